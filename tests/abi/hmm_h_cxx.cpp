// The public header compiles as C++ (-pedantic -Werror).
#include <hmm/hmm.h>

int main()
{
	hmm_device_info info{};

	// declared with C linkage (not evaluated: nothing to link)
	static_cast<void>(sizeof(hmm_shutdown()));
	return static_cast<int>(info.index);
}
