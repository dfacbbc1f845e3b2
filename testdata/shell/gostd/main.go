// Command gostd answers questions with Go's standard library, as a reference
// for berth-shell's re-implementations of Go behaviour: strconv.Quote (%q),
// the unicode general categories, and regexp's leftmost-first matching and
// ReplaceAllString for the glob patterns of ${VAR#pat} and ${VAR/pat/repl}.
// One JSON request per line on stdin, one JSON answer per line on stdout.
//
// Used by `cargo test -p berth-shell --test gostd -- --ignored`.
package main

import (
	"bufio"
	"encoding/json"
	"os"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

type request struct {
	Op      string   `json:"op"`
	S       string   `json:"s"`
	Tokens  []string `json:"tokens"` // "*", "?" or a literal char
	Greedy  bool     `json:"greedy"`
	Value   string   `json:"value"`
	Replace string   `json:"replace"`
}

type answer struct {
	Out    string     `json:"out"`
	Ranges [][]string `json:"ranges,omitempty"`
}

func regex(tokens []string, greedy, anchored bool) *regexp.Regexp {
	var b strings.Builder
	if anchored {
		b.WriteString("^")
	}
	for _, t := range tokens {
		switch t {
		case "*":
			if greedy {
				b.WriteString(".*")
			} else {
				b.WriteString(".*?")
			}
		case "?":
			b.WriteString(".")
		case `\*`, `\?`:
			b.WriteString(regexp.QuoteMeta(t[1:]))
		default:
			b.WriteString(regexp.QuoteMeta(t))
		}
	}
	return regexp.MustCompile(b.String())
}

func categories() [][]string {
	names := []string{"Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd", "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm", "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Co", "Cs"}
	var out [][]string
	start, cur := rune(0), ""
	for r := rune(0); r <= unicode.MaxRune+1; r++ {
		cat := "Cn"
		if r <= unicode.MaxRune {
			for _, n := range names {
				if unicode.Is(unicode.Categories[n], r) {
					cat = n
					break
				}
			}
		} else {
			cat = "end"
		}
		if cat != cur {
			if cur != "" {
				out = append(out, []string{strconv.Itoa(int(start)), strconv.Itoa(int(r - 1)), cur})
			}
			start, cur = r, cat
		}
	}
	return out
}

func main() {
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<24)
	out := bufio.NewWriter(os.Stdout)
	defer out.Flush()
	enc := json.NewEncoder(out)
	for in.Scan() {
		var r request
		if err := json.Unmarshal(in.Bytes(), &r); err != nil {
			panic(err)
		}
		var a answer
		switch r.Op {
		case "quote":
			a.Out = strconv.Quote(r.S)
		case "categories":
			a.Ranges = categories()
		case "prefix":
			// The end of the leftmost-first match of ^pattern, or -1.
			re := regex(r.Tokens, r.Greedy, true)
			if loc := re.FindStringIndex(r.Value); loc != nil {
				a.Out = r.Value[loc[1]:]
			} else {
				a.Out = r.Value
			}
		case "replace_first":
			re := regex(r.Tokens, true, false)
			if loc := re.FindStringIndex(r.Value); loc != nil {
				a.Out = r.Value[:loc[0]] + r.Replace + r.Value[loc[1]:]
			} else {
				a.Out = r.Value
			}
		case "replace_all":
			a.Out = regex(r.Tokens, true, false).ReplaceAllString(r.Value, r.Replace)
		default:
			panic("unknown op " + r.Op)
		}
		if err := enc.Encode(a); err != nil {
			panic(err)
		}
	}
	if err := in.Err(); err != nil {
		panic(err)
	}
}
