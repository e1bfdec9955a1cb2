# The few fields of an OpenStack meta_data.json the tiny guest uses, for busybox awk:
#   hostname VALUE      the top-level "hostname" string
#   name VALUE          the top-level "name" string
#   key VALUE           one line per value of the top-level "public_keys" object
#
# A small JSON scanner, not a full parser.  It follows strings (so braces, commas
# and quotes inside them are not structure), the nesting of {} and [], and whether
# a string in an object is a key or a value: a "name" inside "meta", "keys" or
# "devices" is not taken for the instance's name.
# Limits: \uXXXX escapes are kept as written (hostnames and SSH keys are ASCII);
# numbers, true/false/null are skipped; a value holding several lines (\n) gives
# one "key" line per non-blank line; malformed JSON gives partial or no output,
# never an error that stops the boot.

{ s = s $0 "\n" }  # the whole document as one string: JSON may be on one line or many

END {
    n = length(s)
    d = 0  # depth: 1 = inside the top-level object
    for (i = 1; i <= n; i++) {
        c = substr(s, i, 1)
        if (c == "\"") {
            v = ""
            for (i++; i <= n; i++) {
                c = substr(s, i, 1)
                if (c == "\"") break
                if (c == "\\") {
                    i++
                    c = substr(s, i, 1)
                    if (c == "n" || c == "r") c = "\n"
                    else if (c == "t") c = "\t"
                    else if (c != "\"" && c != "\\" && c != "/") c = "\\" c
                }
                v = v c
            }
            if (kind[d] == "{" && want_key[d]) { key[d] = v; want_key[d] = 0 }
            else emit(v)
        } else if (c == "{" || c == "[") {
            d++
            kind[d] = c
            want_key[d] = (c == "{")
            key[d] = ""
        } else if (c == "}" || c == "]") {
            if (d > 0) d--
        } else if (c == ",") {
            want_key[d] = (kind[d] == "{")
        }
    }
}

function emit(v,    lines, count, j) {
    if (d == 1 && (key[1] == "hostname" || key[1] == "name")) {
        sub(/\n.*/, "", v)
        print key[1], v
    } else if (d == 2 && kind[2] == "{" && key[1] == "public_keys") {
        count = split(v, lines, "\n")
        for (j = 1; j <= count; j++)
            if (lines[j] ~ /[^ \t]/) print "key", lines[j]
    }
}
