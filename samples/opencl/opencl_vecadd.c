// SPDX-License-Identifier: MIT
/*
 * opencl_vecadd - a real OpenCL kernel (vecadd.cl) run through the OpenCL
 * ICD loader on device-resident managed memory.
 *
 *   $ opencl_vecadd [-s MIB] [-k FILE.cl]
 *
 * Three managed buffers (hmm_malloc) are filled on the CPU.  The inputs a
 * and b are prefetched to hmmgpu device 0 (hmm_prefetch also maps them in
 * the device's view, so the device finds them without a fault); the
 * output c is left on the CPU.  Each buffer is wrapped as a cl_mem with
 * CL_MEM_USE_HOST_PTR on its device-view address (hmm_devptr), so the
 * OpenCL implementation -- PoCL's CPU device, whose work-item threads use
 * the host pointer in place -- reads and writes the data through the
 * device's MMU view: a and b where they already are, and c by device
 * faults, the kernel's first stores migrating it over the way a GPU
 * faults in what it was not given.  Right after clFinish, before the CPU
 * touches anything, the program reads where every page is (hmm_residency)
 * and what moved during the kernel (hmm_get_stats): every page of a, b
 * and c on the device, c's bytes and nothing else migrated to it, nothing
 * back to the host, no CPU fault.  Then the CPU checks every result,
 * which faults c back.
 *
 * -s MIB   size of each buffer in MiB (default 8)
 * -k FILE  build this OpenCL C source ("-": standard input) instead of
 *          the built-in vecadd.cl; it must define vecadd(a, b, c, n)
 *          with the same arguments
 *
 * Exit status: 0 when every result is exact and the pages were on the
 * device while the kernel ran; 1 on a wrong result or an error; 77 (skip)
 * when there is no hmmgpu device or no usable OpenCL platform.
 */
#include <hmm/hmm.h>

#include <CL/cl.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sample_common.h"
#include "vecadd_cl.h" /* vecadd_cl_source: vecadd.cl, embedded at build time */

#define PROG "opencl_vecadd"
#define EXIT_SKIP 77


/* Pages of [p, p + size) on device @dev now; -1 (after a message) on error. */
static long pages_on(const void *p, size_t size, size_t page, int dev)
{
	size_t npages = size / page;
	int8_t *loc = malloc(npages);
	long n = 0;
	int ret;

	if (!loc) {
		fprintf(stderr, PROG ": out of memory\n");
		return -1;
	}
	ret = hmm_residency(p, size, loc, npages);
	if (ret < 0) {
		fprintf(stderr, PROG ": hmm_residency: %s\n", hmm_strerror(ret));
		free(loc);
		return -1;
	}
	for (size_t i = 0; i < npages; i++)
		n += loc[i] == dev;
	free(loc);
	return n;
}

/* The whole of file @path ("-": standard input), or NULL with errno. */
static char *read_file(const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "r") : stdin;
	char *buf = NULL;
	size_t len = 0, cap = 0, got;

	if (!f)
		return NULL;
	do {
		if (cap - len < 4096) {
			char *nb = realloc(buf, cap + 65536);

			if (!nb) {
				free(buf);
				if (f != stdin)
					fclose(f);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
			cap += 65536;
		}
		got = fread(buf + len, 1, cap - len - 1, f);
		len += got;
	} while (got > 0);
	if (ferror(f)) {
		free(buf);
		buf = NULL;
		errno = EIO;
	} else {
		buf[len] = '\0';
	}
	if (f != stdin)
		fclose(f);
	return buf;
}

/*
 * A device of the first platform that has one, CPU devices first: the
 * buffers hold view addresses of this process, which only an
 * implementation running in this process on the CPU (PoCL's CPU device)
 * uses in place.  Returns false, after a message, when there is none.
 */
static bool pick_device(cl_platform_id *platform, cl_device_id *device)
{
	static const cl_device_type types[] = { CL_DEVICE_TYPE_CPU,
						CL_DEVICE_TYPE_ALL };
	cl_platform_id plats[16];
	cl_uint nplat = 0;
	cl_int err;

	err = clGetPlatformIDs(16, plats, &nplat);
	if (err != CL_SUCCESS || nplat == 0) {
		fprintf(stderr, PROG ": no OpenCL platform (clGetPlatformIDs: %d); install an ICD such as pocl-opencl-icd\n",
			err);
		return false;
	}
	if (nplat > 16)
		nplat = 16;
	for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
		for (cl_uint i = 0; i < nplat; i++) {
			cl_uint ndev = 0;

			if (clGetDeviceIDs(plats[i], types[t], 1, device,
					   &ndev) == CL_SUCCESS && ndev > 0) {
				*platform = plats[i];
				return true;
			}
		}
	}
	fprintf(stderr, PROG ": %u OpenCL platform%s but no device\n", nplat,
		nplat == 1 ? "" : "s");
	return false;
}

/* The OpenCL objects the sample uses. */
struct ocl {
	cl_context ctx;
	cl_command_queue queue;
	cl_program program;
	cl_kernel kernel;
};

static void ocl_release(struct ocl *o)
{
	if (o->kernel)
		clReleaseKernel(o->kernel);
	if (o->program)
		clReleaseProgram(o->program);
	if (o->queue)
		clReleaseCommandQueue(o->queue);
	if (o->ctx)
		clReleaseContext(o->ctx);
}

/*
 * Creates the context and queue on @dev and builds @src (named @what in
 * messages).  Returns 0, or 1 after a message (what was made is released
 * by ocl_release()).
 */
static int ocl_setup(struct ocl *o, cl_device_id dev, const char *src,
		     const char *what)
{
	double t0 = sample_now_ms();
	cl_int err;

	o->ctx = clCreateContext(NULL, 1, &dev, NULL, NULL, &err);
	if (!o->ctx) {
		fprintf(stderr, PROG ": clCreateContext: %d\n", err);
		return 1;
	}
	o->queue = clCreateCommandQueue(o->ctx, dev, 0, &err);
	if (!o->queue) {
		fprintf(stderr, PROG ": clCreateCommandQueue: %d\n", err);
		return 1;
	}
	o->program = clCreateProgramWithSource(o->ctx, 1, &src, NULL, &err);
	if (!o->program) {
		fprintf(stderr, PROG ": clCreateProgramWithSource: %d\n", err);
		return 1;
	}
	err = clBuildProgram(o->program, 1, &dev, "", NULL, NULL);
	if (err != CL_SUCCESS) {
		size_t len = 0;
		char *log;

		fprintf(stderr, PROG ": clBuildProgram of %s: %d\n", what, err);
		clGetProgramBuildInfo(o->program, dev, CL_PROGRAM_BUILD_LOG, 0,
				      NULL, &len);
		log = malloc(len + 1);
		if (log && clGetProgramBuildInfo(o->program, dev,
						 CL_PROGRAM_BUILD_LOG, len, log,
						 NULL) == CL_SUCCESS) {
			log[len] = '\0';
			fprintf(stderr, "%s\n", log);
		}
		free(log);
		return 1;
	}
	o->kernel = clCreateKernel(o->program, "vecadd", &err);
	if (!o->kernel) {
		fprintf(stderr, PROG ": clCreateKernel(vecadd): %d\n", err);
		return 1;
	}
	printf("OpenCL: built %s in %.0f ms\n", what, sample_now_ms() - t0);
	return 0;
}

/*
 * The sample proper: managed buffers a, b, c of @size bytes filled on the
 * CPU, a and b prefetched to @dev, all three wrapped as cl_mem on their
 * device-view addresses, c = a + b by the OpenCL kernel, residency and
 * counters right after clFinish, then the CPU's check.  Returns the exit
 * status.
 */
static int run(struct ocl *o, int dev, const struct hmm_device_info *info,
	       size_t size)
{
	static const char *const names[3] = { "a", "b", "c" };
	static const cl_mem_flags flags[3] = {
		CL_MEM_READ_ONLY, CL_MEM_READ_ONLY, CL_MEM_WRITE_ONLY
	};
	const size_t page = (size_t)sysconf(_SC_PAGESIZE);
	const size_t n = size / sizeof(float);
	const size_t npages = size / page;
	struct hmm_stats st0, st1, st2, st3;
	struct hmm_stats pre, during, back, all;
	char line[512];
	float *buf[3] = { NULL, NULL, NULL }, *a, *b, *c;
	cl_mem mem[3] = { NULL, NULL, NULL };
	cl_uint cl_n = (cl_uint)n;
	size_t global = n, bad = 0;
	long resident[3], total = 0;
	bool on_device;
	double t0, kernel_ms;
	cl_int err;
	int ret, status = 1;

	for (int i = 0; i < 3; i++) {
		buf[i] = hmm_malloc(size);
		if (!buf[i]) {
			fprintf(stderr, PROG ": hmm_malloc(%zu): %s\n", size,
				strerror(errno));
			goto out;
		}
	}
	a = buf[0];
	b = buf[1];
	c = buf[2];

	/* Values below 2^17: every sum is exact in a float. */
	for (size_t i = 0; i < n; i++) {
		a[i] = (float)(i & 0xffff);
		b[i] = (float)((i * 7 + 3) & 0xffff);
		c[i] = -1.0f; /* no sum is negative: an element not written shows */
	}

	/* The inputs go to the device; the output stays on the CPU. */
	ret = hmm_get_stats(dev, &st0);
	if (ret) {
		fprintf(stderr, PROG ": hmm_get_stats: %s\n", hmm_strerror(ret));
		goto out;
	}
	for (int i = 0; i < 2; i++) {
		ret = hmm_prefetch(buf[i], size, dev);
		if (ret) {
			fprintf(stderr, PROG ": hmm_prefetch to %s: %s\n",
				info->name, hmm_strerror(ret));
			goto out;
		}
	}
	hmm_get_stats(dev, &st1);
	sample_stats_sub(&pre, &st1, &st0);
	printf("%s: a, b, c of %zu MiB filled on the CPU; a, b prefetched (%.1f MiB to the device), c left on the CPU\n",
	       info->name, size >> 20, sample_total_mib(&pre, HMM_DIR_TO_DEVICE));

	/* cl_mem objects on the device-view addresses. */
	for (int i = 0; i < 3; i++) {
		void *dptr = hmm_devptr(buf[i], dev);

		if (!dptr) {
			fprintf(stderr, PROG ": hmm_devptr: %s\n", strerror(errno));
			goto out;
		}
		mem[i] = clCreateBuffer(o->ctx, flags[i] | CL_MEM_USE_HOST_PTR,
					size, dptr, &err);
		if (!mem[i]) {
			fprintf(stderr, PROG ": clCreateBuffer(CL_MEM_USE_HOST_PTR): %d\n",
				err);
			goto out;
		}
	}
	err = clSetKernelArg(o->kernel, 0, sizeof(cl_mem), &mem[0]);
	err |= clSetKernelArg(o->kernel, 1, sizeof(cl_mem), &mem[1]);
	err |= clSetKernelArg(o->kernel, 2, sizeof(cl_mem), &mem[2]);
	err |= clSetKernelArg(o->kernel, 3, sizeof(cl_n), &cl_n);
	if (err != CL_SUCCESS) {
		fprintf(stderr, PROG ": clSetKernelArg failed\n");
		goto out;
	}

	/* The kernel. */
	hmm_get_stats(dev, &st1);
	t0 = sample_now_ms();
	err = clEnqueueNDRangeKernel(o->queue, o->kernel, 1, NULL, &global,
				     NULL, 0, NULL, NULL);
	if (err == CL_SUCCESS)
		err = clFinish(o->queue);
	if (err != CL_SUCCESS) {
		fprintf(stderr, PROG ": running vecadd: %d\n", err);
		goto out;
	}
	kernel_ms = sample_now_ms() - t0;

	/* Where the data is now, before the CPU touches any of it. */
	hmm_get_stats(dev, &st2);
	sample_stats_sub(&during, &st2, &st1);
	for (int i = 0; i < 3; i++) {
		resident[i] = pages_on(buf[i], size, page, dev);
		if (resident[i] < 0)
			goto out;
		total += resident[i];
	}
	printf("kernel: vecadd over %zu elements in %.1f ms\n", n, kernel_ms);
	printf("residency: after clFinish %ld/%zu pages on %s (%s %ld, %s %ld, %s %ld); during the kernel device_faults=%" PRIu64
	       " cpu_faults=%" PRIu64 " to_device=%" PRIu64 " B to_host=%" PRIu64 " B\n",
	       total, 3 * npages, info->name, names[0], resident[0], names[1],
	       resident[1], names[2], resident[2], during.device_faults,
	       during.cpu_faults, sample_total_bytes(&during, HMM_DIR_TO_DEVICE), sample_total_bytes(&during, HMM_DIR_TO_HOST));
	/*
	 * On the device while the kernel ran: every page there now, nothing
	 * went back meanwhile, and what came over is c, which the kernel's
	 * stores faulted in (a and b were there already).
	 */
	on_device = (size_t)total == 3 * npages && during.cpu_faults == 0 &&
		    sample_total_bytes(&during, HMM_DIR_TO_HOST) == 0 && sample_total_bytes(&during, HMM_DIR_TO_DEVICE) == size &&
		    during.device_faults > 0;
	if (!on_device)
		fprintf(stderr, PROG ": the data was not on %s while the kernel ran, or did not get there through the device view\n",
			info->name);

	/* The CPU checks every result, which faults c back. */
	for (size_t i = 0; i < n; i++) {
		float want = (float)(i & 0xffff) + (float)((i * 7 + 3) & 0xffff);

		if (c[i] != want) {
			if (bad < 5)
				fprintf(stderr, PROG ": c[%zu] = %g, expected %g\n",
					i, (double)c[i], (double)want);
			bad++;
		}
	}
	hmm_get_stats(dev, &st3);
	sample_stats_sub(&back, &st3, &st2);
	sample_stats_sub(&all, &st3, &st0);
	if (bad) {
		fprintf(stderr, PROG ": %zu of %zu results wrong\n", bad, n);
	} else {
		printf("verify: %zu results exact; reading c faulted it back: %" PRIu64
		       " CPU faults, %.1f MiB to the host\n",
		       n, back.cpu_faults, sample_total_mib(&back, HMM_DIR_TO_HOST));
		status = on_device ? 0 : 1;
	}
	/* the summary line of every sample (sample_common.h) */
	sample_format_summary(line, sizeof(line), &all);
	printf("%s\n", line);
out:
	/* The cl_mem objects go first: the memory behind them goes next. */
	for (int i = 0; i < 3; i++)
		if (mem[i])
			clReleaseMemObject(mem[i]);
	for (int i = 0; i < 3; i++)
		hmm_free(buf[i]);
	return status;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: " PROG " [-s MIB] [-k FILE.cl]\n"
		"  -s, --size MIB        bytes of each vector, in MiB (1 to 1024, default 8)\n"
		"  -k, --kernel FILE.cl  build this OpenCL C source instead of vecadd.cl\n"
		"  -h, --help            this text\n");
}

static const struct option long_options[] = {
	{ "size", required_argument, NULL, 's' },
	{ "kernel", required_argument, NULL, 'k' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

int main(int argc, char **argv)
{
	const char *kernel_file = NULL;
	const int dev = 0;
	struct hmm_device_info info;
	struct ocl o = { 0 };
	cl_platform_id platform;
	cl_device_id cldev;
	char pname[256] = "?", dname[256] = "?", dver[256] = "?";
	char *file_src = NULL;
	size_t size_mib = 8;
	int opt, ndev, ret, status = 1;

	opterr = 0; /* one line of our own instead */
	while ((opt = getopt_long(argc, argv, "s:k:h", long_options, NULL)) != -1) {
		switch (opt) {
		case 's':
			size_mib = strtoul(optarg, NULL, 0);
			if (size_mib < 1 || size_mib > 1024) {
				fprintf(stderr, PROG ": -s takes 1 to 1024 (MiB)\n");
				return 1;
			}
			break;
		case 'k':
			kernel_file = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			fprintf(stderr, PROG ": bad option '%s'; see " PROG " --help\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument '%s'; see " PROG " --help\n",
			argv[optind]);
		return 2;
	}

	ndev = hmm_device_count();
	if (ndev <= 0) {
		fprintf(stderr, PROG ": no hmmgpu device (%s); load hmmgpu.ko and check you may open /dev/dri/renderD*\n",
			ndev < 0 ? hmm_strerror(ndev) : "none found");
		return EXIT_SKIP;
	}
	ret = hmm_device_get_info(dev, &info);
	if (ret) {
		fprintf(stderr, PROG ": device %d: %s\n", dev, hmm_strerror(ret));
		return 1;
	}

	if (!pick_device(&platform, &cldev))
		return EXIT_SKIP;
	clGetPlatformInfo(platform, CL_PLATFORM_NAME, sizeof(pname), pname, NULL);
	clGetDeviceInfo(cldev, CL_DEVICE_NAME, sizeof(dname), dname, NULL);
	clGetDeviceInfo(cldev, CL_DEVICE_VERSION, sizeof(dver), dver, NULL);
	printf("OpenCL: platform \"%s\", device \"%s\" (%s)\n", pname, dname,
	       dver);

	if (kernel_file) {
		file_src = read_file(kernel_file);
		if (!file_src) {
			fprintf(stderr, PROG ": %s: %s\n", kernel_file,
				strerror(errno));
			return 1;
		}
	}
	if (ocl_setup(&o, cldev, file_src ? file_src : vecadd_cl_source,
		      kernel_file ? kernel_file : "vecadd.cl") == 0)
		status = run(&o, dev, &info, size_mib << 20);
	ocl_release(&o);
	free(file_src);
	return status;
}
