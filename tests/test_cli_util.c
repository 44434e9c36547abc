/* Parsing of durations, sizes, counts and pids, and human-readable sizes. */
#include "testutil.h"

#include "cli/cli.h"

static void test_durations(void **state)
{
    (void)state;
    int64_t ms;
    assert_int_equal(cli_parse_duration_ms("1", &ms), 0);
    assert_int_equal(ms, 1000);
    assert_int_equal(cli_parse_duration_ms("250ms", &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(cli_parse_duration_ms("1.5s", &ms), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(cli_parse_duration_ms("2m", &ms), 0);
    assert_int_equal(ms, 120000);
    assert_int_equal(cli_parse_duration_ms("1h", &ms), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(cli_parse_duration_ms("0", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(cli_parse_duration_ms(".5", &ms), 0);
    assert_int_equal(ms, 500);
    const char *bad[] = {"", "x", "-1", "1x", "1 s", "s", "1e400", "nan", "inf", "1sec", "1.5.2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (cli_parse_duration_ms(bad[i], &ms) == 0)
            fail_msg("accepted duration '%s'", bad[i]);
}

static void test_sizes(void **state)
{
    (void)state;
    uint64_t b;
    assert_int_equal(cli_parse_size("4096", &b), 0);
    assert_int_equal(b, 4096);
    assert_int_equal(cli_parse_size("64K", &b), 0);
    assert_int_equal(b, 65536);
    assert_int_equal(cli_parse_size("1.5M", &b), 0);
    assert_int_equal(b, 1572864);
    assert_int_equal(cli_parse_size("2G", &b), 0);
    assert_int_equal(b, 2147483648ULL);
    assert_int_equal(cli_parse_size("1MiB", &b), 0);
    assert_int_equal(b, 1048576);
    assert_int_equal(cli_parse_size("8k", &b), 0);
    assert_int_equal(b, 8192);
    const char *bad[] = {"", "K", "-1", "1.5", "12Q", "1MM", "99999999999T"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (cli_parse_size(bad[i], &b) == 0)
            fail_msg("accepted size '%s'", bad[i]);
}

static void test_counts_and_pids(void **state)
{
    (void)state;
    int64_t n;
    assert_int_equal(cli_parse_count("12", &n), 0);
    assert_int_equal(n, 12);
    assert_int_equal(cli_parse_count("-1", &n), -1);
    assert_int_equal(cli_parse_count("1x", &n), -1);
    assert_int_equal(cli_parse_count("99999999999999999999", &n), -1);
    assert_int_equal(cli_parse_pid("0", &n), -1);
    assert_int_equal(cli_parse_pid("4294967297", &n), -1);
    assert_int_equal(cli_parse_pid("1", &n), 0);
}

static void test_human(void **state)
{
    (void)state;
    char b[16];
    assert_string_equal(cli_human(0, b), "0B");
    assert_string_equal(cli_human(4096, b), "4.0K");
    assert_string_equal(cli_human(135168, b), "132K");
    assert_string_equal(cli_human(1258291, b), "1.2M");
    assert_string_equal(cli_human(18446744073709551615ULL, b), "16E");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_counts_and_pids),
        cmocka_unit_test(test_human),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
