#include <stdio.h>

int
main(void)
{
	fprintf(stderr, "creditd: not yet\n");
	return 1;
}
