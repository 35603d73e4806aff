/* The public header compiles as strict C99 (-std=c99 -pedantic -Werror). */
#include <hmm/hmm.h>

int main(void)
{
	struct hmm_device_info info = { { 0 } };

	/* declared with their prototypes (not evaluated: nothing to link) */
	(void)sizeof(hmm_shutdown());
	(void)sizeof(hmm_event_record((struct hmm_event *)0,
				      (struct hmm_stream *)0));
	return (int)info.index;
}
