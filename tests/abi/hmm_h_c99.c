/* The public header compiles as strict C99 (-std=c99 -pedantic -Werror). */
#include <hmm/hmm.h>

int main(void)
{
	struct hmm_device_info info = { { 0 } };

	return (int)info.index;
}
