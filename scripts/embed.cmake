# Turn a file into a C source defining ig_catalog_json[] and ig_catalog_json_len.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR len "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
file(WRITE ${OUT} "/* generated from etc/models.json: do not edit */\n#include <stddef.h>\n"
  "const unsigned char ig_catalog_json[] = {${body}0x00};\n"
  "const size_t ig_catalog_json_len = ${len};\n")
