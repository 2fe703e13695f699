package data

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// EscapeName turns a file or folder name into valid UTF-8 that can be turned back:
// each byte that is not part of a valid UTF-8 sequence becomes \xNN (two lowercase
// hex digits) and a backslash becomes \\; everything else is kept. Sample ids and
// image-folder class names are escaped names, so that they survive JSON (config.json,
// checkpoint metadata, best.json) unchanged, where invalid bytes would become U+FFFD;
// file paths keep the raw bytes. A valid name without a backslash is its own escape.
func EscapeName(name string) string {
	if utf8.ValidString(name) && !strings.Contains(name, `\`) {
		return name
	}
	var b strings.Builder
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, name[i])
		case r == '\\':
			b.WriteString(`\\`)
		default:
			b.WriteString(name[i : i+size])
		}
		i += size
	}
	return b.String()
}

// UnescapeName is the inverse of EscapeName. It returns an error for a backslash that
// starts neither \\ nor \xNN.
func UnescapeName(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case i+1 < len(s) && s[i+1] == '\\':
			b.WriteByte('\\')
			i++
		case i+3 < len(s) && s[i+1] == 'x':
			v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
			if err != nil {
				return "", fmt.Errorf("data: escaped name %q: bad \\x escape at byte %d", s, i)
			}
			b.WriteByte(byte(v))
			i += 3
		default:
			return "", fmt.Errorf("data: escaped name %q: a backslash at byte %d starts neither \\\\ nor \\xNN", s, i)
		}
	}
	return b.String(), nil
}
