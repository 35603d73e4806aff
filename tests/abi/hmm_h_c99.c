/* The public header compiles as strict C99 (-std=c99 -pedantic -Werror). */
#include <hmm/hmm.h>

int main(void)
{
	struct hmm_device_info info = { { 0 } };
	struct hmm_pointer_attributes attr = { 0 };

	/* declared with their prototypes (not evaluated: nothing to link) */
	(void)sizeof(hmm_shutdown());
	(void)sizeof(hmm_event_record((struct hmm_event *)0,
				      (struct hmm_stream *)0));
	(void)sizeof(hmm_memcpy((void *)0, (const void *)0, 0));
	(void)sizeof(hmm_memcpy_async((void *)0, (const void *)0, 0,
				      (struct hmm_stream *)0));
	(void)sizeof(hmm_memset((void *)0, 0, 0));
	(void)sizeof(hmm_memset_async((void *)0, 0, 0,
				      (struct hmm_stream *)0));
	(void)sizeof(hmm_discard((void *)0, 0));
	(void)sizeof(hmm_prefetch_batch((const void *const *)0,
					(const size_t *)0, 0, HMM_CPU,
					(struct hmm_stream *)0));
	(void)sizeof(hmm_pointer_get_attributes((const void *)0, HMM_CPU,
		(struct hmm_pointer_attributes *)0));
	return (int)info.index + (int)attr.type;
}
