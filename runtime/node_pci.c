// SPDX-License-Identifier: MIT
/*
 * node_pci.c - the PCI identity of a device (hmmgpu's PCI personality), read
 * with libpciaccess: pci_system_init(), a slot match on the bus address
 * libdrm gave, pci_device_probe() for the regions, pci_system_cleanup().
 *
 * libpciaccess keeps one global state per process, which
 * pci_system_cleanup() frees: an application that uses libpciaccess
 * itself should let libhmm discover devices (hmm_device_count()) before
 * its own pci_system_init() or after its cleanup.
 */
#include "config.h"
#include "drm_node.h"

#include <errno.h>

#include <stdio.h>
#include <string.h>

#if defined(HAVE_LIBPCIACCESS) && HAVE_LIBPCIACCESS
#include <pciaccess.h>

int hmm_node_pci_identify(const char *bus, struct hmm_node_pci *id)
{
	unsigned int domain, b, dev, func;
	struct pci_slot_match match = { 0 };
	struct pci_device_iterator *it;
	struct pci_device *d;
	int n = 0, ret;

	memset(id, 0, sizeof(*id));
	if (sscanf(bus, "pci:%x:%x:%x.%u%n", &domain, &b, &dev, &func,
		   &n) != 4 || bus[n] || b > 0xff || dev > 0x1f || func > 7)
		return -ENODEV;
	ret = pci_system_init();
	if (ret)
		return -ret;
	match.domain = domain;
	match.bus = b;
	match.dev = dev;
	match.func = func;
	it = pci_slot_match_iterator_create(&match);
	d = it ? pci_device_next(it) : NULL;
	ret = d ? -pci_device_probe(d) : -ENODEV;
	if (!ret) {
		id->domain = domain;
		id->bus = b;
		id->dev = dev;
		id->func = func;
		id->vendor_id = d->vendor_id;
		id->device_id = d->device_id;
		/* the driver's rule: the largest memory BAR */
		for (int i = 0; i < 6; i++) {
			if (d->regions[i].is_IO ||
			    d->regions[i].size <= id->bar_size)
				continue;
			id->bar = i;
			id->bar_size = d->regions[i].size;
		}
		if (!id->bar_size)
			ret = -ENODEV;
	}
	pci_iterator_destroy(it);
	pci_system_cleanup();
	return ret;
}
#else
int hmm_node_pci_identify(const char *bus, struct hmm_node_pci *id)
{
	(void)bus;
	memset(id, 0, sizeof(*id));
	return -ENOTSUP;
}
#endif
