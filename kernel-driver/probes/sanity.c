// SPDX-License-Identifier: GPL-2.0
/*
 * Not a question: this probe must compile on every kernel.  If it does not,
 * the probe command line is wrong and every answer would be "no".
 */
#include <linux/mm.h>

int hmmgpu_probe(struct page *page);
int hmmgpu_probe(struct page *page)
{
	return page_to_nid(page);
}
