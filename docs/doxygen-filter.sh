#!/bin/sh
# Doxygen input filter for include/pusher/*.h.  The headers use plain C
# comments; read as Doxygen would read them:
#  - the file's first comment is the file's documentation (@file);
#  - a comment starting a line documents the declaration after it;
#  - a comment after a member's ';' or ',' documents that member (/**<);
#  - <word> in a comment is text, not an HTML tag.
sed -e '/^#/!s/<\([A-Za-z]\)/\\<\1/g' \
    -e '1s|^/\* |/** @file\n * |' \
    -e '2,$s|^\( *\)/\* |\1/** |' \
    -e 's|\([;,]\)\( *\)/\* |\1\2/**< |' "$1"
