# Turns a file into a C byte array, NUL-terminated, with its length (without the NUL).
# Usage: cmake -DIN=file -DOUT=file.c -DNAME=symbol -P embed_file.cmake
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" hex_len)
math(EXPR len "${hex_len} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
# Twenty bytes a line keeps the generated file readable in a diff.
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){20})" "\\1\n    " bytes "${bytes}")
set(body "/* Generated from ${IN} by cmake/embed_file.cmake; do not edit. */\n")
string(APPEND body "#include <stddef.h>\n\nconst char ${NAME}[] = {\n    ${bytes}0x00};\n")
string(APPEND body "const size_t ${NAME}_len = ${len};\n")
file(WRITE "${OUT}.tmp" "${body}")
execute_process(COMMAND ${CMAKE_COMMAND} -E copy_if_different "${OUT}.tmp" "${OUT}")
file(REMOVE "${OUT}.tmp")
