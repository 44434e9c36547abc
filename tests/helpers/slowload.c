/* A program whose loading takes 300 ms (slowlib.c's constructor); it then lives 200 ms. */
#include <unistd.h>

int slowlib_ready(void);

int main(void)
{
    usleep(200 * 1000);
    return slowlib_ready() ? 0 : 1;
}
