/* A single-line terminal editor, I/O-free; see lineedit.h.
 *
 * Input is a byte stream from a terminal in raw mode. A small state machine
 * tells keys apart:
 *
 *     NORMAL --ESC--> ESC --'['--> CSI --final byte 0x40..0x7e--> NORMAL
 *                                   --';'--> CSI_REST --final--> NORMAL
 *                         --'O'--> SS3 --any byte-------------> NORMAL
 *                         --else-------------------------------> NORMAL
 *
 * (ECMA-48 section 5.4: a control sequence is CSI, parameter bytes
 * 0x30..0x3f, intermediate bytes 0x20..0x2f, one final byte.) Bytes of a
 * multi-byte UTF-8 character are collected in NORMAL until the character is
 * whole, then checked (RFC 3629: no overlongs, no surrogates) and inserted.
 *
 * Every change redraws the whole prompt line: carriage return, prompt,
 * the visible part of the buffer, erase to the end of the line, then the
 * cursor moved right to its column. That is a few dozen bytes per key and
 * cannot drift out of step with the screen.
 */
#include "lineedit.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    ESC_NONE = 0,
    ESC_START,    /* ESC seen */
    ESC_CSI,      /* ESC [ seen, the first parameter follows */
    ESC_CSI_REST, /* past the first parameter, waiting for the final byte */
    ESC_SS3,      /* ESC O seen, one byte follows */
};

#define DEFAULT_COLUMNS 80

/* ---- UTF-8 and widths --------------------------------------------------- */

/* Length of the character starting at s (the buffer is valid UTF-8). */
static size_t char_len(unsigned char lead)
{
    return lead < 0x80 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
}

static uint32_t char_decode(const char *s, size_t *len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = char_len(u[0]);
    uint32_t cp;

    switch (n) {
    case 1:
        cp = u[0];
        break;
    case 2:
        cp = (uint32_t)(u[0] & 0x1f) << 6 | (u[1] & 0x3f);
        break;
    case 3:
        cp = (uint32_t)(u[0] & 0x0f) << 12 | (uint32_t)(u[1] & 0x3f) << 6 | (u[2] & 0x3f);
        break;
    default:
        cp = (uint32_t)(u[0] & 0x07) << 18 | (uint32_t)(u[1] & 0x3f) << 12 |
             (uint32_t)(u[2] & 0x3f) << 6 | (u[3] & 0x3f);
        break;
    }
    *len = n;
    return cp;
}

struct range {
    uint32_t first;
    uint32_t last;
};

static bool in_ranges(uint32_t cp, const struct range *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cp >= r[i].first && cp <= r[i].last)
            return true;
    return false;
}

/* Not the full Unicode tables (wcwidth() needs a UTF-8 locale the tool does
 * not set), but the blocks people type: combining marks, CJK, Hangul, the
 * common emoji. A miss costs one column of cursor offset, not a crash. */
unsigned lineedit_char_width(uint32_t cp)
{
    static const struct range zero[] = {
        {0x0300, 0x036f}, {0x0483, 0x0489}, {0x0591, 0x05bd}, {0x0610, 0x061a}, {0x064b, 0x065f},
        {0x0e31, 0x0e31}, {0x0e34, 0x0e3a}, {0x0e47, 0x0e4e}, {0x1ab0, 0x1aff}, {0x1dc0, 0x1dff},
        {0x200b, 0x200f}, {0x20d0, 0x20ff}, {0xfe00, 0xfe0f}, {0xfe20, 0xfe2f}, {0xe0100, 0xe01ef},
    };
    static const struct range wide[] = {
        {0x1100, 0x115f},   {0x231a, 0x231b},   {0x2329, 0x232a},   {0x23e9, 0x23ec},
        {0x23f0, 0x23f0},   {0x23f3, 0x23f3},   {0x25fd, 0x25fe},   {0x2614, 0x2615},
        {0x2648, 0x2653},   {0x267f, 0x267f},   {0x2693, 0x2693},   {0x26a1, 0x26a1},
        {0x26aa, 0x26ab},   {0x26bd, 0x26be},   {0x26c4, 0x26c5},   {0x26ce, 0x26ce},
        {0x26d4, 0x26d4},   {0x26ea, 0x26ea},   {0x26f2, 0x26f5},   {0x26fa, 0x26fa},
        {0x26fd, 0x26fd},   {0x2705, 0x2705},   {0x270a, 0x270b},   {0x2728, 0x2728},
        {0x274c, 0x274c},   {0x274e, 0x274e},   {0x2753, 0x2755},   {0x2757, 0x2757},
        {0x2795, 0x2797},   {0x27b0, 0x27b0},   {0x27bf, 0x27bf},   {0x2b1b, 0x2b1c},
        {0x2b50, 0x2b50},   {0x2b55, 0x2b55},   {0x2e80, 0x303e},   {0x3041, 0x33ff},
        {0x3400, 0x4dbf},   {0x4e00, 0x9fff},   {0xa000, 0xa4cf},   {0xa960, 0xa97f},
        {0xac00, 0xd7a3},   {0xf900, 0xfaff},   {0xfe10, 0xfe19},   {0xfe30, 0xfe6f},
        {0xff00, 0xff60},   {0xffe0, 0xffe6},   {0x1f004, 0x1f004}, {0x1f0cf, 0x1f0cf},
        {0x1f18e, 0x1f18e}, {0x1f191, 0x1f19a}, {0x1f200, 0x1f251}, {0x1f300, 0x1f64f},
        {0x1f680, 0x1f6ff}, {0x1f7e0, 0x1f7eb}, {0x1f90c, 0x1f9ff}, {0x1fa70, 0x1faff},
        {0x20000, 0x3fffd},
    };

    if (cp < 0x300)
        return 1;
    if (in_ranges(cp, zero, sizeof zero / sizeof zero[0]))
        return 0;
    if (in_ranges(cp, wide, sizeof wide / sizeof wide[0]))
        return 2;
    return 1;
}

/* Columns taken by buf[from, to). Tabs are drawn as one space. */
static size_t text_width(const char *buf, size_t from, size_t to)
{
    size_t w = 0;

    while (from < to) {
        size_t n;
        uint32_t cp = char_decode(buf + from, &n);
        w += lineedit_char_width(cp);
        from += n;
    }
    return w;
}

/* ---- buffers ------------------------------------------------------------- */

static int grow(char **p, size_t *cap, size_t need)
{
    size_t new_cap;
    char *q;

    if (need <= *cap)
        return 0;
    new_cap = *cap ? *cap : 64;
    while (new_cap < need) {
        if (new_cap > SIZE_MAX / 2)
            return -ENOMEM;
        new_cap *= 2;
    }
    q = realloc(*p, new_cap);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = new_cap;
    return 0;
}

static int out_append(struct lineedit *le, const char *s, size_t n)
{
    if (n > SIZE_MAX - le->out_len || grow(&le->out, &le->out_cap, le->out_len + n) < 0)
        return -ENOMEM;
    memcpy(le->out + le->out_len, s, n);
    le->out_len += n;
    return 0;
}

static int out_str(struct lineedit *le, const char *s)
{
    return out_append(le, s, strlen(s));
}

/* ---- drawing ------------------------------------------------------------- */

/* Appends buf[from, to) for the screen: tabs become spaces. */
static int out_text(struct lineedit *le, size_t from, size_t to)
{
    while (from < to) {
        const char *tab = memchr(le->buf + from, '\t', to - from);
        size_t end = tab ? (size_t)(tab - le->buf) : to;
        if (out_append(le, le->buf + from, end - from) < 0)
            return -ENOMEM;
        if (tab && out_append(le, " ", 1) < 0)
            return -ENOMEM;
        from = tab ? end + 1 : to;
    }
    return 0;
}

static int redraw(struct lineedit *le)
{
    size_t cols = le->cols ? le->cols : DEFAULT_COLUMNS;
    size_t avail, start = 0, end, w, cursor_col;
    char move[32];

    /* The last column stays empty: writing there makes some terminals wrap. */
    avail = cols > (size_t)le->prompt_cols + 2 ? cols - le->prompt_cols - 1 : 1;

    /* Scroll just far enough that the cursor is visible. */
    w = text_width(le->buf, 0, le->pos);
    while (w > avail && start < le->pos) {
        size_t n;
        w -= lineedit_char_width(char_decode(le->buf + start, &n));
        start += n;
    }
    cursor_col = le->prompt_cols + w;
    end = le->pos;
    while (end < le->len) {
        size_t n;
        unsigned cw = lineedit_char_width(char_decode(le->buf + end, &n));
        if (w + cw > avail)
            break;
        w += cw;
        end += n;
    }

    if (out_str(le, "\r") < 0 || out_str(le, le->prompt) < 0 || out_text(le, start, end) < 0 ||
        out_str(le, "\033[K\r") < 0)
        return -ENOMEM;
    if (cursor_col > 0) {
        int n = snprintf(move, sizeof move, "\033[%zuC", cursor_col);
        if (out_append(le, move, (size_t)n) < 0)
            return -ENOMEM;
    }
    le->is_shown = true;
    return 0;
}

static int refresh(struct lineedit *le)
{
    return le->is_shown ? redraw(le) : 0;
}

static int bell(struct lineedit *le)
{
    return le->is_shown ? out_str(le, "\a") : 0;
}

/* ---- editing ------------------------------------------------------------- */

static size_t prev_char(const struct lineedit *le, size_t pos)
{
    while (pos > 0 && ((unsigned char)le->buf[--pos] & 0xc0) == 0x80)
        ;
    return pos;
}

static size_t next_char(const struct lineedit *le, size_t pos)
{
    return pos < le->len ? pos + char_len((unsigned char)le->buf[pos]) : pos;
}

static int insert(struct lineedit *le, const char *s, size_t n)
{
    if (n > le->max_len - le->len)
        return bell(le);
    if (grow(&le->buf, &le->cap, le->len + n) < 0)
        return -ENOMEM;
    memmove(le->buf + le->pos + n, le->buf + le->pos, le->len - le->pos);
    memcpy(le->buf + le->pos, s, n);
    le->len += n;
    le->pos += n;
    return refresh(le);
}

/* Removes buf[from, to) and leaves the cursor at from. */
static int erase(struct lineedit *le, size_t from, size_t to)
{
    if (from == to)
        return 0;
    memmove(le->buf + from, le->buf + to, le->len - to);
    le->len -= to - from;
    le->pos = from;
    return refresh(le);
}

static int move_to(struct lineedit *le, size_t pos)
{
    if (pos == le->pos)
        return 0;
    le->pos = pos;
    return refresh(le);
}

static int erase_word(struct lineedit *le)
{
    size_t from = le->pos;

    while (from > 0 && (le->buf[from - 1] == ' ' || le->buf[from - 1] == '\t'))
        from--;
    while (from > 0 && le->buf[from - 1] != ' ' && le->buf[from - 1] != '\t')
        from = prev_char(le, from);
    return erase(le, from, le->pos);
}

/* Replaces what is being typed with text[0..n), the cursor at its end. */
static int set_buffer(struct lineedit *le, const char *text, size_t n)
{
    if (grow(&le->buf, &le->cap, n) < 0)
        return -ENOMEM;
    if (n)
        memcpy(le->buf, text, n);
    le->len = le->pos = n;
    return refresh(le);
}

/* Remembers a finished line, unless empty, too long or the same as the
 * newest entry. Out of memory: not remembered, nothing else lost. */
static void history_add(struct lineedit *le, const char *line, size_t n)
{
    if (n == 0 || n > LINEEDIT_HISTORY_LINE)
        return;
    if (le->hist_len && le->hist_lens[le->hist_len - 1] == n &&
        memcmp(le->hist[le->hist_len - 1], line, n) == 0)
        return;
    if (!le->hist) {
        le->hist = calloc(LINEEDIT_HISTORY, sizeof *le->hist);
        le->hist_lens = calloc(LINEEDIT_HISTORY, sizeof *le->hist_lens);
        if (!le->hist || !le->hist_lens) {
            free(le->hist);
            free(le->hist_lens);
            le->hist = NULL;
            le->hist_lens = NULL;
            return;
        }
    }
    char *copy = malloc(n);
    if (!copy)
        return;
    memcpy(copy, line, n);
    if (le->hist_len == LINEEDIT_HISTORY) {
        free(le->hist[0]);
        memmove(le->hist, le->hist + 1, (LINEEDIT_HISTORY - 1) * sizeof *le->hist);
        memmove(le->hist_lens, le->hist_lens + 1, (LINEEDIT_HISTORY - 1) * sizeof *le->hist_lens);
        le->hist_len--;
    }
    le->hist[le->hist_len] = copy;
    le->hist_lens[le->hist_len++] = n;
}

/* Up (step -1) or Down (+1) through the history. */
static int history_step(struct lineedit *le, int step)
{
    if (step < 0 ? le->hist_pos == 0 : le->hist_pos >= le->hist_len)
        return bell(le);
    if (le->hist_pos == le->hist_len) {
        /* Leaving the line being typed: keep it to come back to. */
        char *d = realloc(le->draft, le->len ? le->len : 1);
        if (!d)
            return -ENOMEM;
        le->draft = d;
        memcpy(le->draft, le->buf, le->len);
        le->draft_len = le->len;
    }
    le->hist_pos = step < 0 ? le->hist_pos - 1 : le->hist_pos + 1;
    if (le->hist_pos == le->hist_len)
        return set_buffer(le, le->draft, le->draft_len);
    return set_buffer(le, le->hist[le->hist_pos], le->hist_lens[le->hist_pos]);
}

/* Moves the buffer into the finished line and leaves the prompt empty. */
static int finish_line(struct lineedit *le)
{
    char *p = le->line;
    size_t cap = le->line_cap;
    bool was_shown = le->is_shown;

    if (was_shown) {
        /* Leave the whole line on the screen, unscrolled, as the record of
         * what was sent; it may wrap, which is fine once it is history. */
        if (out_str(le, "\r") < 0 || out_str(le, le->prompt) < 0 || out_text(le, 0, le->len) < 0 ||
            out_str(le, "\033[K\r\n") < 0)
            return -ENOMEM;
    }
    history_add(le, le->buf, le->len);
    le->hist_pos = le->hist_len;
    le->draft_len = 0;
    le->line = le->buf;
    le->line_len = le->len;
    le->line_cap = le->cap;
    le->buf = p;
    le->cap = cap;
    le->len = le->pos = 0;
    le->is_shown = false;
    return was_shown ? redraw(le) : 0;
}

/* A whole UTF-8 character from the terminal (RFC 3629 section 4). */
static int insert_utf8(struct lineedit *le)
{
    size_t n;
    uint32_t cp = char_decode((const char *)le->utf8, &n);
    static const uint32_t min_for_len[5] = {0, 0, 0x80, 0x800, 0x10000};

    if (cp < min_for_len[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0; /* overlong or not a character */
    if (cp >= 0x80 && cp <= 0x9f)
        return 0; /* C1 controls: invisible, and some terminals act on them */
    return insert(le, (const char *)le->utf8, n);
}

/* A key from a CSI or SS3 sequence: final byte and first parameter. */
static int escape_key(struct lineedit *le, unsigned char final, unsigned param)
{
    switch (final) {
    case 'A':
        return history_step(le, -1);
    case 'B':
        return history_step(le, 1);
    case 'C':
        return move_to(le, next_char(le, le->pos));
    case 'D':
        return move_to(le, prev_char(le, le->pos));
    case 'H':
        return move_to(le, 0);
    case 'F':
        return move_to(le, le->len);
    case '~':
        switch (param) {
        case 1:
        case 7:
            return move_to(le, 0);
        case 4:
        case 8:
            return move_to(le, le->len);
        case 3:
            return erase(le, le->pos, next_char(le, le->pos));
        default:
            return 0;
        }
    default:
        return 0; /* function keys, pastes: nothing to do */
    }
}

/* One byte outside escape sequences. Returns an event or -ENOMEM. */
static int normal_byte(struct lineedit *le, unsigned char c)
{
    bool was_cr = le->last_was_cr;

    le->last_was_cr = c == '\r';
    if (le->utf8_need > 0) {
        if ((c & 0xc0) == 0x80) {
            le->utf8[le->utf8_len++] = c;
            if (le->utf8_len < le->utf8_need)
                return LINEEDIT_NONE;
            le->utf8_need = 0;
            return insert_utf8(le);
        }
        le->utf8_need = 0; /* truncated character: drop it, c stands alone */
    }
    if (c >= 0x80) {
        if (c >= 0xc2 && c <= 0xf4) {
            le->utf8[0] = c;
            le->utf8_len = 1;
            le->utf8_need = (uint8_t)char_len(c);
        }
        return LINEEDIT_NONE;
    }
    if (c >= 0x20 && c < 0x7f)
        return insert(le, (const char *)&c, 1);

    switch (c) {
    case '\r':
    case '\n':
        if (c == '\n' && was_cr)
            return LINEEDIT_NONE;
        return finish_line(le) < 0 ? -ENOMEM : LINEEDIT_LINE;
    case 0x01: /* ^A */
        return move_to(le, 0);
    case 0x02: /* ^B */
        return move_to(le, prev_char(le, le->pos));
    case 0x03: /* ^C */
        return LINEEDIT_INTERRUPT;
    case 0x04: /* ^D */
        if (le->len == 0)
            return LINEEDIT_EOF;
        return erase(le, le->pos, next_char(le, le->pos));
    case 0x05: /* ^E */
        return move_to(le, le->len);
    case 0x06: /* ^F */
        return move_to(le, next_char(le, le->pos));
    case 0x08: /* ^H */
    case 0x7f: /* DEL, what Backspace sends */
        return erase(le, prev_char(le, le->pos), le->pos);
    case '\t':
        return insert(le, "\t", 1);
    case 0x0b: /* ^K */
        return erase(le, le->pos, le->len);
    case 0x0c: /* ^L */
        if (le->is_shown && out_str(le, "\033[H\033[2J") < 0)
            return -ENOMEM;
        return refresh(le);
    case 0x10: /* ^P */
        return history_step(le, -1);
    case 0x0e: /* ^N */
        return history_step(le, 1);
    case 0x15: /* ^U */
        return erase(le, 0, le->pos);
    case 0x17: /* ^W */
        return erase_word(le);
    case 0x1b:
        le->esc = ESC_START;
        return LINEEDIT_NONE;
    default:
        return LINEEDIT_NONE;
    }
}

static int feed_byte(struct lineedit *le, unsigned char c)
{
    switch (le->esc) {
    case ESC_START:
        le->esc = c == '[' ? ESC_CSI : c == 'O' ? ESC_SS3 : ESC_NONE;
        le->esc_param = 0;
        return LINEEDIT_NONE;
    case ESC_SS3:
        le->esc = ESC_NONE;
        return escape_key(le, c, 0);
    case ESC_CSI:
    case ESC_CSI_REST:
        if (le->esc == ESC_CSI && c >= '0' && c <= '9') {
            if (le->esc_param < 10000)
                le->esc_param = le->esc_param * 10 + (unsigned)(c - '0');
            return LINEEDIT_NONE;
        }
        if (c >= 0x20 && c <= 0x3f) {
            le->esc = ESC_CSI_REST; /* ';', further parameters, intermediates */
            return LINEEDIT_NONE;
        }
        le->esc = ESC_NONE;
        if (c >= 0x40 && c <= 0x7e)
            return escape_key(le, c, le->esc_param);
        return normal_byte(le, c); /* not a sequence after all */
    default:
        return normal_byte(le, c);
    }
}

/* ---- API ----------------------------------------------------------------- */

void lineedit_init(struct lineedit *le, const char *prompt, size_t max_len)
{
    memset(le, 0, sizeof *le);
    le->prompt = prompt;
    le->prompt_cols = (unsigned)text_width(prompt, 0, strlen(prompt));
    le->max_len = max_len;
}

void lineedit_reset(struct lineedit *le)
{
    free(le->buf);
    free(le->line);
    free(le->out);
    for (size_t i = 0; i < le->hist_len; i++)
        free(le->hist[i]);
    free(le->hist);
    free(le->hist_lens);
    free(le->draft);
    memset(le, 0, sizeof *le);
}

void lineedit_set_columns(struct lineedit *le, unsigned cols)
{
    le->cols = cols;
}

int lineedit_feed(struct lineedit *le, const char *in, size_t len, size_t *consumed)
{
    size_t i = 0;
    int rv = LINEEDIT_NONE;

    while (i < len && rv == LINEEDIT_NONE)
        rv = feed_byte(le, (unsigned char)in[i++]);
    *consumed = i;
    return rv;
}

const char *lineedit_line(const struct lineedit *le, size_t *len)
{
    *len = le->line_len;
    return le->line ? le->line : "";
}

const char *lineedit_buffer(const struct lineedit *le, size_t *len)
{
    *len = le->len;
    return le->buf ? le->buf : "";
}

int lineedit_hide(struct lineedit *le)
{
    if (!le->is_shown)
        return 0;
    le->is_shown = false;
    return out_str(le, "\r\033[K");
}

int lineedit_show(struct lineedit *le)
{
    return redraw(le);
}

bool lineedit_is_shown(const struct lineedit *le)
{
    return le->is_shown;
}

const char *lineedit_output(const struct lineedit *le, size_t *len)
{
    *len = le->out_len;
    return le->out ? le->out : "";
}

void lineedit_output_clear(struct lineedit *le)
{
    le->out_len = 0;
}
