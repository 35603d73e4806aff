/* SPDX-License-Identifier: MIT */
/*
 * vecadd.cl - the OpenCL kernel of samples/opencl/opencl_vecadd.c:
 * c[i] = a[i] + b[i], one work-item per element.
 *
 * The buffers wrap hmmgpu device-view memory (CL_MEM_USE_HOST_PTR with
 * hmm_devptr() addresses), so every load and store here goes through the
 * device's MMU view: to a page already on the device it is a hit, to any
 * other page a device fault that migrates it over.
 */
__kernel void vecadd(__global const float *a, __global const float *b,
		     __global float *c, const uint n)
{
	size_t i = get_global_id(0);

	if (i < n)
		c[i] = a[i] + b[i];
}
