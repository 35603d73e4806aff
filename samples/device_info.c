// SPDX-License-Identifier: MIT
/*
 * device_info - list the hmmgpu devices and what they report.
 *
 *   $ device_info
 *   hmmgpu0  /dev/dri/renderD128  256 MiB memory, 256 MiB free, ...
 *            PCI 0000:00:04.0 [1af4:1110], device memory in BAR 2 (1024 MiB)
 *   hmmgpu1  /dev/dri/renderD129  256 MiB memory, 256 MiB free, ...
 *            bus platform:hmmgpu.1, device memory in system RAM
 *
 * Exits 0 when at least one device was found and described, 1 otherwise
 * (2 for a bad command line).
 */
#include <hmm/hmm.h>

#include <stdio.h>
#include <string.h>

static const char *engine_name(uint32_t engine)
{
	switch (engine) {
	case HMM_COPY_ENGINE_SOFTWARE:
		return "software";
	case HMM_COPY_ENGINE_DMAENGINE:
		return "dmaengine";
	default:
		return "unknown";
	}
}

static void usage(FILE *f)
{
	fprintf(f, "usage: device_info\n"
		"Lists the hmmgpu devices this process can use and what each reports.\n"
		"Exits 0 when at least one device was found and described, 1 otherwise.\n"
		"  -h, --help  this text\n");
}

int main(int argc, char **argv)
{
	int n;

	if (argc > 1) {
		if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
			usage(stdout);
			return 0;
		}
		fprintf(stderr, "device_info: unexpected argument '%s'; it takes none (see device_info --help)\n",
			argv[1]);
		return 2;
	}
	n = hmm_device_count();

	if (n < 0) {
		fprintf(stderr, "device_info: cannot enumerate devices: %s\n",
			hmm_strerror(n));
		return 1;
	}
	if (n == 0) {
		fprintf(stderr, "device_info: no hmmgpu device found; load hmmgpu.ko (see README) and check you may open /dev/dri/renderD*\n");
		return 1;
	}

	printf("%d hmmgpu device%s\n", n, n == 1 ? "" : "s");
	for (int i = 0; i < n; i++) {
		struct hmm_device_info info;
		int ret = hmm_device_get_info(i, &info);

		if (ret) {
			fprintf(stderr, "device_info: device %d: %s\n", i,
				hmm_strerror(ret));
			return 1;
		}
		printf("%-8s %-20s %6llu MiB memory, %6llu MiB free, %llu-byte pages, copy engine %s, ABI %u%s\n",
		       info.name, info.render_node,
		       (unsigned long long)(info.mem_total >> 20),
		       (unsigned long long)(info.mem_free >> 20),
		       (unsigned long long)info.page_size,
		       engine_name(info.copy_engine), info.abi_version,
		       info.caps & HMM_DEVICE_CAP_VIEW ? "" :
		       ", no device view on this kernel and CPU");
		if (info.caps & HMM_DEVICE_CAP_PCI)
			printf("%-8s PCI %04x:%02x:%02x.%u [%04x:%04x], device memory in BAR %u (%llu MiB)\n",
			       "", info.pci_domain, info.pci_bus,
			       info.pci_dev, info.pci_func,
			       info.pci_vendor_id, info.pci_device_id,
			       info.pci_bar,
			       (unsigned long long)(info.pci_bar_size >> 20));
		else if (info.bus[0])
			printf("%-8s bus %s, device memory in system RAM\n", "",
			       info.bus);
		if (info.mem_free > info.mem_total || !info.page_size) {
			fprintf(stderr, "device_info: %s reports inconsistent memory sizes\n",
				info.name);
			return 1;
		}
	}
	return 0;
}
