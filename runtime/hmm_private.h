/* SPDX-License-Identifier: MIT */
/*
 * hmm_private.h - declarations shared by the libhmm sources.
 */
#ifndef HMM_PRIVATE_H
#define HMM_PRIVATE_H

#include "hmm/hmm.h"

/* Marks the definition of a public function (built -fvisibility=hidden). */
#define HMM_EXPORT __attribute__((visibility("default")))

#endif /* HMM_PRIVATE_H */
