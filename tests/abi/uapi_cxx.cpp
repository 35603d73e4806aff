// The uapi header compiles as C++ (-pedantic -Werror).
#include "hmmgpu_drm.h"

int main()
{
	drm_hmmgpu_get_info info{};

	return static_cast<int>(info.flags);
}
