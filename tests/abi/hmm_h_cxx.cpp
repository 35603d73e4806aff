// The public header compiles as C++ (-pedantic -Werror).
#include <hmm/hmm.h>

int main()
{
	hmm_device_info info{};
	hmm_pointer_attributes attr{};

	// declared with C linkage (not evaluated: nothing to link)
	static_cast<void>(sizeof(hmm_shutdown()));
	static_cast<void>(sizeof(hmm_memcpy(nullptr, nullptr, 0)));
	static_cast<void>(sizeof(hmm_memcpy_async(nullptr, nullptr, 0, nullptr)));
	static_cast<void>(sizeof(hmm_memset(nullptr, 0, 0)));
	static_cast<void>(sizeof(hmm_memset_async(nullptr, 0, 0, nullptr)));
	static_cast<void>(sizeof(hmm_discard(nullptr, 0)));
	static_cast<void>(sizeof(hmm_prefetch_batch(nullptr, nullptr, 0,
						    HMM_CPU, nullptr)));
	static_cast<void>(sizeof(hmm_pointer_get_attributes(nullptr, HMM_CPU,
							    nullptr)));
	return static_cast<int>(info.index + attr.type);
}
