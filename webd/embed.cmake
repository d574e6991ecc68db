# Embed webd/openapi.json in drover-web as a C array (cmake -P, with IN
# and OUT): drover-web serves the very document the repository has.
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," arr "${hex}")
file(WRITE ${OUT} "/* generated from webd/openapi.json by webd/embed.cmake */\n"
  "const unsigned char web_openapi_json[] = {${arr}0};\n"
  "const unsigned long web_openapi_json_len = sizeof web_openapi_json - 1;\n")
