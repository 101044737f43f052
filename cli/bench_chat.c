/* wsk bench --payload chat: see bench_chat.h. */
#include "bench_chat.h"

#include <stdio.h>
#include <string.h>

/* Common words of chat messages: 128 of them, so a word costs deflate about
 * seven bits once its Huffman code is learnt, as in real text. */
static const char *const words[128] = {
    "the",     "to",       "and",     "a",       "I",      "you",    "it",       "is",
    "that",    "of",       "in",      "we",      "for",    "on",     "this",     "be",
    "can",     "have",     "not",     "just",    "with",   "do",     "so",       "are",
    "but",     "will",     "at",      "what",    "if",     "my",     "me",       "all",
    "was",     "get",      "up",      "there",   "now",    "it's",   "about",    "think",
    "from",    "out",      "know",    "one",     "like",   "they",   "go",       "time",
    "when",    "our",      "how",     "yes",     "no",     "ok",     "thanks",   "please",
    "today",   "tomorrow", "meeting", "deploy",  "build",  "test",   "fix",      "bug",
    "release", "server",   "client",  "review",  "merge",  "branch", "issue",    "ticket",
    "lunch",   "coffee",   "later",   "soon",    "done",   "again",  "still",    "looks",
    "good",    "great",    "sure",    "maybe",   "need",   "want",   "should",   "could",
    "would",   "after",    "before",  "team",    "room",   "call",   "link",     "docs",
    "update",  "change",   "check",   "works",   "broken", "green",  "red",      "CI",
    "logs",    "error",    "latency", "numbers", "graph",  "users",  "customer", "support",
    "ship",    "it",       "friday",  "monday",  "week",   "plan",   "idea",     "question",
    "answer",  "hey",      "hi",      "morning", "night",  "lol",    "nice",     "+1",
};

static uint64_t next(uint64_t *s)
{
    /* xorshift64*: fast, and every seq gives its own word sequence */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

/* Fills out[0..len) with words separated by spaces, the last one cut. */
static void fill_words(uint8_t *out, size_t len, uint64_t *s)
{
    size_t off = 0;
    while (off < len) {
        const char *w = words[next(s) >> 57];
        size_t n = strlen(w);
        if (off) {
            out[off++] = ' ';
            if (off == len)
                break;
        }
        if (n > len - off)
            n = len - off;
        memcpy(out + off, w, n);
        off += n;
    }
}

void bench_chat_body(uint8_t *out, size_t len, uint64_t seq)
{
    uint64_t s = seq * UINT64_C(0x9E3779B97F4A7C15) + 1;
    char head[80], tail[40];
    int hn, tn;

    if (s == 0)
        s = 1;
    hn = snprintf(head, sizeof head,
                  "{\"type\":\"message\",\"room\":\"general\",\"user\":"
                  "\"user%04u\",\"text\":\"",
                  (unsigned)(next(&s) % 10000));
    tn = snprintf(tail, sizeof tail, "\",\"ts\":%llu}",
                  (unsigned long long)(UINT64_C(1765000000000) + seq * 137));
    if (len < 80 || hn < 0 || tn < 0 || (size_t)hn + (size_t)tn >= len) {
        fill_words(out, len, &s);
        return;
    }
    memcpy(out, head, (size_t)hn);
    fill_words(out + hn, len - (size_t)hn - (size_t)tn, &s);
    memcpy(out + len - (size_t)tn, tail, (size_t)tn);
}
