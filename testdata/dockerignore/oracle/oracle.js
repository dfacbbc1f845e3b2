#!/usr/bin/env node
// Differential-test oracle for berth-dockerignore: prints @balena/dockerignore's
// decisions. Input (stdin): {"files": ["<.dockerignore text>", ...], "paths": ["a/b", ...]}.
// Output (stdout): one JSON array with, per file, either a string of '0'/'1'
// (one char per path, '1' = ignored) or {"error": "<message>"}.
// Matching is case-sensitive (ignorecase: false), as Docker's is.
'use strict';
const ignore = require('@balena/dockerignore');

let input = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => { input += chunk; });
process.stdin.on('end', () => {
  const { files, paths } = JSON.parse(input);
  const out = files.map((text) => {
    try {
      const ig = ignore({ ignorecase: false }).add(text);
      return paths.map((p) => (ig.ignores(p) ? '1' : '0')).join('');
    } catch (e) {
      return { error: String(e && e.message ? e.message : e) };
    }
  });
  process.stdout.write(JSON.stringify(out));
});
