// The public header compiles as C++ (-pedantic -Werror).
#include <hmm/hmm.h>

int main()
{
	hmm_device_info info{};

	return static_cast<int>(info.index);
}
