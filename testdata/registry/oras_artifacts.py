#!/usr/bin/env python3
"""Interop check with the PyPI `oras` SDK (an independent client): push an
artifact, push a second artifact whose `subject` is the first, pull both
back, list tags with pagination, and query the referrers API.

Usage: oras_artifacts.py HOST:PORT WORKDIR. Prints a JSON summary; exits
non-zero on any mismatch.
"""
import hashlib
import json
import os
import sys

import oras.client
import oras.oci

host, work = sys.argv[1], sys.argv[2]
os.chdir(work)
client = oras.client.OrasClient(hostname=host, insecure=True)
repo = f"{host}/oras/demo"

with open("artifact.txt", "w") as f:
    f.write("hello from oras\n")
with open("signature.sig", "w") as f:
    f.write("not really a signature\n")

# 1. A plain artifact.
resp = client.push(files=["artifact.txt"], target=f"{repo}:v1")
assert resp.status_code == 201, resp.status_code
subject_digest = resp.headers["Docker-Content-Digest"]

# The exact bytes of the subject manifest (the SDK's Subject.from_manifest
# would re-serialise them and get another digest).
raw = client.do_request(
    f"http://{host}/v2/oras/demo/manifests/v1",
    "GET",
    headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
)
assert raw.status_code == 200, raw.status_code
assert "sha256:" + hashlib.sha256(raw.content).hexdigest() == subject_digest
subject = oras.oci.Subject(
    mediaType="application/vnd.oci.image.manifest.v1+json",
    digest=subject_digest,
    size=len(raw.content),
)

# 2. An artifact referring to it.
resp = client.push(
    files=["signature.sig:application/vnd.example.signature"],
    target=f"{repo}:sig",
    subject=subject,
    manifest_annotations={"org.example.kind": "signature"},
)
assert resp.status_code == 201, resp.status_code
assert resp.headers.get("OCI-Subject") == subject_digest, dict(resp.headers)
sig_digest = resp.headers["Docker-Content-Digest"]

# 3. Pull both back.
os.makedirs("out", exist_ok=True)
files = client.pull(target=f"{repo}:v1", outdir="out")
assert [os.path.basename(f) for f in files] == ["artifact.txt"], files
assert open(files[0]).read() == "hello from oras\n"
files = client.pull(target=f"{repo}:sig", outdir="out")
assert open(files[0]).read() == "not really a signature\n"

# 4. Tags, one page at a time (the SDK follows Link headers).
for t in ["a", "b", "c"]:
    client.push(files=["artifact.txt"], target=f"{repo}:{t}")
tags = client.get_tags(f"{repo}")
assert tags == ["a", "b", "c", "sig", "v1"], tags
assert client.get_tags(f"{repo}", N=2) == ["a", "b"]

# 5. Referrers.
ref = client.do_request(f"http://{host}/v2/oras/demo/referrers/{subject_digest}", "GET")
assert ref.status_code == 200, ref.status_code
index = ref.json()
assert index["mediaType"] == "application/vnd.oci.image.index.v1+json", index
assert [m["digest"] for m in index["manifests"]] == [sig_digest], index
assert index["manifests"][0]["annotations"]["org.example.kind"] == "signature"
filtered = client.do_request(
    f"http://{host}/v2/oras/demo/referrers/{subject_digest}?artifactType=application%2Fvnd.none",
    "GET",
)
assert filtered.headers.get("OCI-Filters-Applied") == "artifactType"
assert filtered.json()["manifests"] == []

# 6. Delete through the SDK: it deletes the manifest `a` points at, which
# removes every tag pointing at the same manifest.
def digest_of(tag):
    r = client.do_request(f"http://{host}/v2/oras/demo/manifests/{tag}", "HEAD")
    assert r.status_code == 200, (tag, r.status_code)
    return r.headers["Docker-Content-Digest"]

digests = {t: digest_of(t) for t in tags}
assert client.delete_tag(f"{repo}", "a")
expected = [t for t in tags if digests[t] != digests["a"]]
assert client.get_tags(f"{repo}") == expected, (client.get_tags(f"{repo}"), expected)

print(json.dumps({"subject": subject_digest, "referrer": sig_digest, "ok": True}))
