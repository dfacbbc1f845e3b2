// Command gostd answers questions with Go's standard library, as a reference
// for berth-dockerignore's re-implementations of Go behaviour (regexp syntax
// and matching, filepath.Clean, filepath.Match's syntax check). It reads one
// JSON request per line on stdin and writes one JSON answer per line.
//
// Used by `cargo test -p berth-dockerignore --test gostd -- --ignored`.
package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"regexp"
)

type request struct {
	Op     string   `json:"op"`
	Regex  string   `json:"regex"`
	Inputs []string `json:"inputs"`
	Path   string   `json:"path"`
}

type answer struct {
	Err     bool   `json:"err"`
	Matches []bool `json:"matches,omitempty"`
	Out     string `json:"out,omitempty"`
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
		case "regex":
			re, err := regexp.Compile(r.Regex)
			if err != nil {
				a.Err = true
				break
			}
			for _, s := range r.Inputs {
				a.Matches = append(a.Matches, re.MatchString(s))
			}
		case "clean":
			a.Out = filepath.Clean(r.Path)
		case "badpattern":
			// path.Match has the same syntax as filepath.Match on Unix and,
			// in every Go release, checks the whole pattern.
			_, err := path.Match(r.Path, ".")
			a.Err = err != nil
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
