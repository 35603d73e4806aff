/* The uapi header compiles as strict C99 (-std=c99 -pedantic -Werror). */
#include "hmmgpu_drm.h"

int main(void)
{
	struct drm_hmmgpu_get_info info = { 0 };

	return (int)info.flags;
}
