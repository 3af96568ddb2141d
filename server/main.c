#include <stdio.h>
int main(void) { puts("bitdistilld"); return 0; }
