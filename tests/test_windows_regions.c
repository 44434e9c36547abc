/* The Windows backend's pure helpers, tested on every system. */
#include "testutil.h"

#include <string.h>

#include "capture/windows_regions.h"

static void test_protect_to_perms(void **state)
{
    (void)state;
    struct {
        uint32_t protect, type;
        const char *perms;
    } cases[] = {
        {WPAGE_NOACCESS, WMEM_PRIVATE, "---p"},
        {0, WMEM_PRIVATE, "---p"}, /* a reservation */
        {WPAGE_READONLY, WMEM_PRIVATE, "r--p"},
        {WPAGE_READWRITE, WMEM_PRIVATE, "rw-p"},
        {WPAGE_WRITECOPY, WMEM_IMAGE, "rw-c"},
        {WPAGE_EXECUTE, WMEM_PRIVATE, "--xp"},
        {WPAGE_EXECUTE_READ, WMEM_IMAGE, "r-xs"},
        {WPAGE_EXECUTE_READWRITE, WMEM_PRIVATE, "rwxp"},
        {WPAGE_EXECUTE_WRITECOPY, WMEM_IMAGE, "rwxc"},
        {WPAGE_READWRITE | WPAGE_GUARD, WMEM_PRIVATE, "rw-g"},
        {WPAGE_READONLY, WMEM_MAPPED, "r--s"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char p[5];
        win_protect_perms(cases[i].protect, cases[i].type, p);
        if (strcmp(p, cases[i].perms) != 0)
            fail_msg("protect 0x%x type 0x%x: %s, expected %s", cases[i].protect, cases[i].type, p,
                     cases[i].perms);
    }
}

static void test_categories(void **state)
{
    (void)state;
    assert_int_equal(win_category(WMEM_COMMIT, WMEM_IMAGE, WPAGE_READONLY, 1, 0, 0), CAT_IMAGE);
    assert_int_equal(win_category(WMEM_COMMIT, WMEM_MAPPED, WPAGE_READONLY, 1, 0, 0), CAT_FILE);
    assert_int_equal(win_category(WMEM_COMMIT, WMEM_MAPPED, WPAGE_READWRITE, 0, 0, 0), CAT_SHM);
    assert_int_equal(win_category(WMEM_COMMIT, WMEM_PRIVATE, WPAGE_READWRITE, 0, 1, 0), CAT_HEAP);
    assert_int_equal(win_category(WMEM_RESERVE, WMEM_PRIVATE, 0, 0, 0, 1), CAT_STACK);
    assert_int_equal(win_category(WMEM_COMMIT, WMEM_PRIVATE, WPAGE_READWRITE, 0, 0, 0), CAT_ANON);
    assert_int_equal(win_category(WMEM_RESERVE, WMEM_PRIVATE, 0, 0, 0, 0), CAT_RESERVE);
    assert_int_equal(win_category(WMEM_COMMIT, WMEM_PRIVATE, WPAGE_NOACCESS, 0, 0, 0), CAT_GUARD);
}

static void test_dos_paths(void **state)
{
    (void)state;
    struct win_drive d[] = {{'C', "\\Device\\HarddiskVolume3"},
                            {'D', "\\Device\\HarddiskVolume30"}};
    char out[256];
    assert_string_equal(win_dos_path("\\Device\\HarddiskVolume3\\Windows\\x.dll", d, 2, out, 256),
                        "C:\\Windows\\x.dll");
    /* Volume30 is not volume3 followed by "0". */
    assert_string_equal(win_dos_path("\\Device\\HarddiskVolume30\\data.bin", d, 2, out, 256),
                        "D:\\data.bin");
    assert_string_equal(win_dos_path("\\??\\C:\\windows\\system32\\ntdll.dll", d, 2, out, 256),
                        "C:\\windows\\system32\\ntdll.dll");
    assert_string_equal(win_dos_path("\\Device\\Mup\\server\\share\\f", d, 2, out, 256),
                        "\\Device\\Mup\\server\\share\\f");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_protect_to_perms),
        cmocka_unit_test(test_categories),
        cmocka_unit_test(test_dos_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
