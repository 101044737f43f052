/* A single-line terminal editor for the interactive client, I/O-free.
 *
 * Key presses go in as bytes (lineedit_feed), terminal output comes out as
 * bytes (lineedit_output): the editor never reads or writes a file
 * descriptor, so a test can drive it with strings and look at the screen
 * updates it asks for. The caller owns the terminal: it puts it in raw mode,
 * reads the keys and writes the output.
 *
 * Printing something above the prompt without garbling what is being typed
 * is lineedit_hide(), write the text (ending in a newline), lineedit_show().
 *
 * The edit buffer is always valid UTF-8: input bytes that do not form a
 * valid, printable character are dropped. A line longer than the terminal
 * scrolls sideways, so the prompt always fits on one row.
 *
 * Keys: printable UTF-8 inserts; Enter (CR or LF) finishes the line;
 * Backspace (DEL or ^H) erases one character; ^U erases to the start of the
 * line, ^K to its end, ^W the word before the cursor; Left/Right, Home/End,
 * ^A/^E, ^B/^F move; Up/Down (^P/^N) walk the history of lines entered (the
 * line being typed comes back after the newest); Delete erases under the
 * cursor; ^L clears the screen;
 * ^D ends input on an empty line (deletes under the cursor otherwise);
 * ^C interrupts. Other control keys and escape sequences are ignored.
 */
#ifndef WSK_CLI_LINEEDIT_H
#define WSK_CLI_LINEEDIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* All the editor's state; fields are private. */
struct lineedit {
    char *buf; /* what is being typed, UTF-8, not NUL-terminated */
    size_t len;
    size_t cap;
    size_t pos;      /* cursor, a byte offset at a character boundary */
    size_t max_len;  /* longest line accepted, in bytes */
    char *line;      /* the last finished line (swapped with buf on Enter) */
    size_t line_len; /* its length */
    size_t line_cap; /* its buffer's size */
    const char *prompt;
    unsigned prompt_cols;
    unsigned cols;     /* terminal width */
    uint8_t utf8[4];   /* a character whose bytes are still arriving */
    uint8_t utf8_len;  /* bytes of it seen */
    uint8_t utf8_need; /* bytes it has in all, 0 when none is pending */
    uint8_t esc;       /* escape-sequence state */
    unsigned esc_param;
    bool is_shown;    /* the prompt line is on the screen */
    bool last_was_cr; /* swallow the LF of a CR LF pair */
    char *out;        /* terminal output not yet taken by the caller */
    size_t out_len;
    size_t out_cap;
    /* History: the last LINEEDIT_HISTORY lines entered (each at most
     * LINEEDIT_HISTORY_LINE bytes, so at most 400 KiB), oldest first. */
    char **hist;
    size_t *hist_lens;
    size_t hist_len;
    size_t hist_pos; /* the entry shown; hist_len: the line being typed */
    char *draft;     /* the line being typed, kept while browsing history */
    size_t draft_len;
};

#define LINEEDIT_HISTORY      100
#define LINEEDIT_HISTORY_LINE 4096

enum lineedit_event {
    LINEEDIT_NONE = 0,  /* all input consumed, nothing to do */
    LINEEDIT_LINE,      /* Enter: lineedit_line() has the line */
    LINEEDIT_EOF,       /* ^D on an empty line */
    LINEEDIT_INTERRUPT, /* ^C */
};

/* prompt is borrowed and must outlive the editor. max_len caps a line in
 * bytes (typing past it rings the bell). The prompt starts hidden. Cannot
 * fail: buffers grow on demand. */
void lineedit_init(struct lineedit *le, const char *prompt, size_t max_len);

/* Frees the buffers; the editor can be initialised again. */
void lineedit_reset(struct lineedit *le);

/* The terminal's width in columns (0: assume 80). Takes effect at the next
 * redraw; call lineedit_show() to redraw now. */
void lineedit_set_columns(struct lineedit *le, unsigned cols);

/* Consumes key bytes until one of them finishes an event or in runs out;
 * *consumed says how many were used, so call again with the rest. Returns a
 * lineedit_event or -ENOMEM (the key that needed memory is dropped). On
 * LINEEDIT_LINE the finished line stays on the screen, followed by a fresh
 * prompt when the editor was shown. */
int lineedit_feed(struct lineedit *le, const char *in, size_t len, size_t *consumed);

/* The line finished by the last LINEEDIT_LINE, valid until the next call
 * to lineedit_feed(). */
const char *lineedit_line(const struct lineedit *le, size_t *len);

/* What is being typed now. */
const char *lineedit_buffer(const struct lineedit *le, size_t *len);

/* Takes the prompt line off the screen (carriage return, erase line). */
int lineedit_hide(struct lineedit *le);

/* Draws the prompt, the buffer and the cursor on the current line. */
int lineedit_show(struct lineedit *le);

bool lineedit_is_shown(const struct lineedit *le);

/* Terminal output waiting to be written, and marking it written. */
const char *lineedit_output(const struct lineedit *le, size_t *len);
void lineedit_output_clear(struct lineedit *le);

/* Columns a code point takes on a terminal: 0 for combining marks, 2 for
 * East Asian wide characters and emoji, 1 otherwise. */
unsigned lineedit_char_width(uint32_t cp);

#endif
