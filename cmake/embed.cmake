# Turns the file IN into a C header OUT defining wsk_cli_chat_page[] and its length.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR n "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* Generated from ${IN}; do not edit. */\nstatic const unsigned char wsk_cli_chat_page[] = {${bytes}};\nstatic const unsigned long wsk_cli_chat_page_len = ${n}UL;\n")
