/* SPDX-License-Identifier: MIT */
/*
 * kt_rng.h - the seeded random numbers of the kernel tests that replay
 * from a seed (test_fuzz, test_stress): splitmix64, one state per thread.
 */
#ifndef HMM_KT_RNG_H
#define HMM_KT_RNG_H

#include <stdbool.h>
#include <stdint.h>

struct rng {
	uint64_t s;
};

static inline uint64_t rnd(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t below(struct rng *r, uint64_t n)
{
	return n ? rnd(r) % n : 0;
}

static inline bool chance(struct rng *r, unsigned int pct)
{
	return below(r, 100) < pct;
}

#endif /* HMM_KT_RNG_H */
