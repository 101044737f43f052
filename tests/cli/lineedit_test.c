/* The interactive client's line editor, driven with key strings; the screen
 * updates it asks for are checked where they matter (hide/show around an
 * incoming message). */
#include <errno.h>

#include "lineedit.h"
#include "wsk_test.h"

/* Feeds keys until they are used up; returns the last event. */
static int feed_all(struct lineedit *le, const char *keys, size_t len)
{
    int last = LINEEDIT_NONE;
    while (len) {
        size_t used = 0;
        int ev = lineedit_feed(le, keys, len, &used);
        CHECK(ev >= 0);
        if (ev != LINEEDIT_NONE)
            last = ev;
        keys += used;
        len -= used;
        if (!used && ev == LINEEDIT_NONE)
            break;
    }
    return last;
}

static void check_buffer(struct lineedit *le, const char *want)
{
    size_t len;
    const char *b = lineedit_buffer(le, &len);
    CHECK_EQ_INT(len, strlen(want));
    if (len == strlen(want))
        CHECK_MEM(b, want, len);
}

static void test_typing_and_enter(void)
{
    struct lineedit le;
    lineedit_init(&le, "> ", 1000);
    CHECK_EQ_INT(feed_all(&le, "hello", 5), LINEEDIT_NONE);
    check_buffer(&le, "hello");
    CHECK_EQ_INT(feed_all(&le, "\r", 1), LINEEDIT_LINE);
    size_t len;
    const char *line = lineedit_line(&le, &len);
    CHECK_EQ_INT(len, 5);
    CHECK_MEM(line, "hello", 5);
    check_buffer(&le, "");
    /* CR LF is one Enter. */
    int events = 0;
    const char *keys = "a\r\nb\r";
    size_t left = strlen(keys);
    while (left) {
        size_t used;
        int ev = lineedit_feed(&le, keys, left, &used);
        events += ev == LINEEDIT_LINE;
        keys += used;
        left -= used;
    }
    CHECK_EQ_INT(events, 2);
    lineedit_reset(&le);
}

static void test_editing_keys(void)
{
    struct lineedit le;
    lineedit_init(&le, "> ", 1000);
    /* Backspace erases a whole UTF-8 character (κ is 2 bytes, 😀 is 4). */
    feed_all(&le, "a\xce\xba\xf0\x9f\x98\x80", 7);
    check_buffer(&le, "a\xce\xba\xf0\x9f\x98\x80");
    feed_all(&le, "\x7f", 1);
    check_buffer(&le, "a\xce\xba");
    feed_all(&le, "\x7f", 1);
    check_buffer(&le, "a");
    /* ^W erases the word before the cursor, ^U the whole line before it. */
    feed_all(&le, " two words", 10);
    feed_all(&le, "\x17", 1);
    check_buffer(&le, "a two ");
    feed_all(&le, "\x15", 1);
    check_buffer(&le, "");
    /* Left arrow then insert. */
    feed_all(&le, "ac\x1b[Db", 6);
    check_buffer(&le, "abc");
    /* Invalid UTF-8 is dropped. */
    feed_all(&le, "\xff\xc0", 2);
    check_buffer(&le, "abc");
    lineedit_reset(&le);
}

static void test_eof_and_interrupt(void)
{
    struct lineedit le;
    lineedit_init(&le, "> ", 1000);
    CHECK_EQ_INT(feed_all(&le, "\x04", 1), LINEEDIT_EOF);
    feed_all(&le, "x", 1);
    /* ^D on a non-empty line is not EOF. */
    CHECK(feed_all(&le, "\x04", 1) != LINEEDIT_EOF);
    CHECK_EQ_INT(feed_all(&le, "\x03", 1), LINEEDIT_INTERRUPT);
    lineedit_reset(&le);
}

static void test_max_len(void)
{
    struct lineedit le;
    lineedit_init(&le, "> ", 4);
    feed_all(&le, "abcdefgh", 8);
    size_t len;
    lineedit_buffer(&le, &len);
    CHECK(len <= 4);
    lineedit_reset(&le);
}

static void test_hide_show_keeps_typed_text(void)
{
    struct lineedit le;
    lineedit_init(&le, "> ", 1000);
    lineedit_show(&le);
    feed_all(&le, "half typed", 10);
    lineedit_output_clear(&le);
    /* An incoming message: hide, (caller prints), show. */
    CHECK_EQ_INT(lineedit_hide(&le), 0);
    size_t len;
    const char *out = lineedit_output(&le, &len);
    CHECK(len >= 1 && out[0] == '\r');
    CHECK(!lineedit_is_shown(&le));
    lineedit_output_clear(&le);
    CHECK_EQ_INT(lineedit_show(&le), 0);
    out = lineedit_output(&le, &len);
    /* The redraw has the prompt and the text typed so far. */
    char *copy = malloc(len + 1);
    memcpy(copy, out, len);
    copy[len] = 0;
    CHECK(strstr(copy, "> ") != NULL);
    CHECK(strstr(copy, "half typed") != NULL);
    free(copy);
    check_buffer(&le, "half typed");
    lineedit_reset(&le);
}

static void test_char_width(void)
{
    CHECK_EQ_INT(lineedit_char_width('a'), 1);
    CHECK_EQ_INT(lineedit_char_width(0x4E2D), 2);  /* 中 */
    CHECK_EQ_INT(lineedit_char_width(0x1F600), 2); /* 😀 */
    CHECK_EQ_INT(lineedit_char_width(0x0301), 0);  /* combining acute */
}

static void test_history(void)
{
    struct lineedit le;
    lineedit_init(&le, "> ", 10000);
    feed_all(&le, "one\rtwo\rtwo\r\r", 13); /* a repeat and an empty line: not kept */
    /* Up twice: "two", then "one"; a third rings the bell and stays. */
    feed_all(&le, "dra", 3);
    feed_all(&le, "\x1b[A", 3);
    check_buffer(&le, "two");
    feed_all(&le, "\x1b[A", 3);
    check_buffer(&le, "one");
    feed_all(&le, "\x1b[A", 3);
    check_buffer(&le, "one");
    /* Down (and ^N) back; past the newest, the line being typed returns. */
    feed_all(&le, "\x1b[B", 3);
    check_buffer(&le, "two");
    feed_all(&le, "\x0e", 1);
    check_buffer(&le, "dra");
    /* ^P recalls; editing it and Enter sends the edited line. */
    feed_all(&le, "\x10!", 2);
    check_buffer(&le, "two!");
    CHECK_EQ_INT(feed_all(&le, "\r", 1), LINEEDIT_LINE);
    size_t len;
    const char *line = lineedit_line(&le, &len);
    CHECK_EQ_INT(len, 4);
    CHECK_MEM(line, "two!", 4);
    /* Bounded: after 150 lines only the newest 100 come back. */
    char buf[16];
    for (int i = 0; i < 150; i++) {
        int n = snprintf(buf, sizeof buf, "l%d\r", i);
        feed_all(&le, buf, (size_t)n);
    }
    CHECK_EQ_INT(le.hist_len, LINEEDIT_HISTORY);
    for (int i = 0; i < 120; i++)
        feed_all(&le, "\x1b[A", 3);
    check_buffer(&le, "l50");
    /* A line over LINEEDIT_HISTORY_LINE bytes is sent, not remembered. */
    feed_all(&le, "\x15", 1);
    for (int i = 0; i < LINEEDIT_HISTORY_LINE + 1; i++)
        feed_all(&le, "x", 1);
    CHECK_EQ_INT(feed_all(&le, "\r", 1), LINEEDIT_LINE);
    feed_all(&le, "\x1b[A", 3);
    check_buffer(&le, "l149");
    lineedit_reset(&le);
}

int main(void)
{
    WSK_RUN(test_history);
    WSK_RUN(test_typing_and_enter);
    WSK_RUN(test_editing_keys);
    WSK_RUN(test_eof_and_interrupt);
    WSK_RUN(test_max_len);
    WSK_RUN(test_hide_show_keeps_typed_text);
    WSK_RUN(test_char_width);
    WSK_TEST_END();
}
