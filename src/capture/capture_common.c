/* Capture helpers that do not depend on the OS. */
#include <string.h>

#include "capture/capture.h"

static const char *const detail_names[] = {"maps", "rollup", "smaps"};

const char *capture_detail_name(int detail)
{
    if (detail < 0 || detail > DETAIL_SMAPS)
        return "maps";
    return detail_names[detail];
}

int capture_detail_parse(const char *name)
{
    for (int i = 0; i <= DETAIL_SMAPS; i++)
        if (strcmp(name, detail_names[i]) == 0)
            return i;
    return -1;
}
