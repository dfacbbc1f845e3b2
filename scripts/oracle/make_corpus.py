#!/usr/bin/env python3
"""Writes the hand-written edge-case corpus to testdata/dockerfile/cases/.

Each case is a small Dockerfile exercising one corner of BuildKit's parser.
Golden outputs come from the oracle: run regen.py afterwards.
"""
import os

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "testdata", "dockerfile", "cases")
os.makedirs(root, exist_ok=True)

CASES = {}


def case(name, src):
    assert name not in CASES, name
    CASES[name] = src


# --- every instruction, plain ---
INSTR = {
    "from": ["FROM alpine", "FROM alpine:3.19 AS build", "FROM --platform=$BUILDPLATFORM golang:1.22 as builder",
             "FROM scratch", "FROM", "FROM a b c d", "from  ubuntu   AS   x ", "FROM --platform=linux/arm64 --x a"],
    "run": ["RUN echo hi", "RUN [\"echo\", \"hi\"]", "RUN", "RUN --mount=type=cache,target=/root/.cache pip install x",
            "RUN --network=none --security=insecure make", "RUN  echo   a  b  ", "RUN [\"a\" \"b\"]", "RUN [ ]",
            "RUN [\"a\", 1]", "RUN [\"a\",]", "RUN [\"sh\", \"-c\", \"echo \\\"q\\\"\"]", "RUN ['single']",
            "RUN [\"a\"] trailing words", "RUN [\"\\u00e9\\ud83d\\ude00\"]", "RUN [\"a\", null]", "RUN [\"a\", [\"b\"]]",
            "RUN [\"a\", {\"k\": 1}]", "RUN [\"unterminated", "RUN [\"tab\\there\"]", "RUN [1,]",
            "RUN --mount=type=secret,id=x,required cat /run/secrets/x", "RUN -- echo --not-a-flag", "RUN --",
            "RUN --flag-only", "RUN --a --b=c -- --d", "RUN - echo", "RUN -x", "RUN ---x y"],
    "cmd": ["CMD echo hi", "CMD [\"echo\", \"hi\"]", "CMD", "CMD []", "CMD [\"a\",", "cmd [\"x\"]"],
    "entrypoint": ["ENTRYPOINT [\"/bin/sh\", \"-c\"]", "ENTRYPOINT exec app", "ENTRYPOINT", "ENTRYPOINT [true]"],
    "shell": ["SHELL [\"powershell\", \"-Command\"]", "SHELL /bin/bash -c", "SHELL", "SHELL [\"a\"] x"],
    "label": ["LABEL a=b", "LABEL a=b c=d", "LABEL \"a b\"=c", "LABEL a=\"b c\" d='e f'", "LABEL a b c",
              "LABEL a", "LABEL", "LABEL a=b c", "LABEL a==b", "LABEL =b", "LABEL a=", "LABEL a\\ b=c",
              "LABEL maintainer=\"x <x@y>\" version=1.0", "LABEL a=b \\\n  c=d", "LABEL a='b\\' c'"],
    "maintainer": ["MAINTAINER me <me@x>", "MAINTAINER", "MAINTAINER   a   b  "],
    "expose": ["EXPOSE 80", "EXPOSE 80/tcp 443/udp", "EXPOSE", "EXPOSE 80\t443  8080", "EXPOSE [\"80\"]"],
    "env": ["ENV a=b", "ENV a b", "ENV a b c d", "ENV a=b c=d", "ENV a=\"b c\" d=e", "ENV a", "ENV",
            "ENV a=b c", "ENV a=b c d", "ENV a=", "ENV a=b\\ c", "ENV a=\"b\\\"c\"", "ENV a='b c' d=\"e\"",
            "ENV PATH=/x:$PATH", "ENV a  =b", "ENV a= b", "ENV \"a\"=b", "ENV a=b=c", "ENV a\tb", "ENV a \"b c\""],
    "add": ["ADD a b", "ADD [\"a\", \"b\"]", "ADD --chown=1:1 --chmod=644 a b", "ADD https://x/y.tgz /z",
            "ADD --keep-git-dir=true git@x:y /z", "ADD --checksum=sha256:abc https://x /y", "ADD --unpack=false a b",
            "ADD", "ADD a", "ADD --link a b"],
    "copy": ["COPY a b", "COPY --from=build /a /b", "COPY [\"a b\", \"c\"]", "COPY --chown=u:g --chmod=755 a b",
             "COPY --link --parents a/b c/", "COPY --exclude=*.md . /app", "COPY --from=\"a b\" x y", "COPY",
             "COPY a b c d/", "COPY --from=a\\ b x y", "COPY --from='q' x y", "COPY --chown=\"\" a b",
             "COPY --a=\"x\\\"y\" a b", "COPY \"a b\" c"],
    "volume": ["VOLUME /data", "VOLUME [\"/a\", \"/b\"]", "VOLUME /a /b", "VOLUME", "VOLUME [\"/a\" \"/b\"]"],
    "user": ["USER app", "USER 1000:1000", "USER", "USER a b"],
    "workdir": ["WORKDIR /app", "WORKDIR", "WORKDIR a b c", "WORKDIR $HOME/x"],
    "arg": ["ARG a", "ARG a=b", "ARG a b", "ARG a=\"b c\"", "ARG", "ARG a= b=c", "ARG a=b\\ c", "ARG 'a'=b",
            "ARG a=$b", "ARG a=\"x"],
    "onbuild": ["ONBUILD RUN echo hi", "ONBUILD", "ONBUILD ONBUILD RUN x", "ONBUILD --x RUN y",
                "ONBUILD COPY --from=a b c", "ONBUILD RUN [\"a\"]", "ONBUILD ENV a=b c=d", "ONBUILD ENV a",
                "ONBUILD FOO bar", "onbuild run x", "ONBUILD RUN [\"a\", 1]", "ONBUILD HEALTHCHECK NONE",
                "ONBUILD   ADD   a   b", "ONBUILD FROM x"],
    "stopsignal": ["STOPSIGNAL SIGTERM", "STOPSIGNAL", "STOPSIGNAL 9 x"],
    "healthcheck": ["HEALTHCHECK NONE", "HEALTHCHECK CMD curl -f http://x/", "HEALTHCHECK --interval=5s --timeout=3s CMD [\"a\", \"b\"]",
                    "HEALTHCHECK", "HEALTHCHECK CMD", "HEALTHCHECK   CMD    a   b ", "HEALTHCHECK --retries=3 NONE",
                    "HEALTHCHECK CMD [\"a\", 1]", "HEALTHCHECK CMD\t[\"x\"]", "HEALTHCHECK --start-period=1s --start-interval=1s CMD x",
                    "HEALTHCHECK none", "HEALTHCHECK CMD [\"a\" \"b\"]", "HEALTHCHECK CMD\u00a0[\"x\"]",
                    "HEALTHCHECK x \u3000 [\"a\"] y", "HEALTHCHECK x \u0085 [1]", "HEALTHCHECK x \u00a0 [] z"],
    "unknown": ["FOO bar", "RUNN echo", "X", "COPPY a b", "FROM-x y", "123 abc", "=== x"],
}
for k, srcs in INSTR.items():
    for i, s in enumerate(srcs):
        case(f"instr_{k}_{i:02d}", "FROM base\n" + s + "\n" if k != "from" else s + "\n")

# --- parser directives ---
DIRECTIVES = [
    "# escape=`\nFROM a\nRUN echo `\n  hi\n",
    "# escape=\\\nFROM a\nRUN echo \\\n  hi\n",
    "#escape=`\nRUN a \\\nb\n",
    "# ESCAPE=`\nRUN a `\nb\n",
    "# syntax=docker/dockerfile:1\n# escape=`\nRUN a `\nb\n",
    "# escape=`\n# syntax=docker/dockerfile:1\nRUN a `\nb\n",
    "# escape=`\n# escape=`\nRUN a\n",
    "# syntax=a\n# syntax=b\nRUN a\n",
    "# escape=x\nRUN a\n",
    "# escape= \nRUN a\n",
    "# check=skip=all\n# escape=`\nRUN a `\nb\n",
    "# comment\n# escape=`\nRUN a `\nb\n",
    "\n# escape=`\nRUN a `\nb\n",
    "  # escape=`\nRUN a `\nb\n",
    "# escape = ` \nRUN a `\nb\n",
    "#  escape  =  `  \nRUN a `\nb\n",
    "# escape=`\r\nRUN a `\r\nb\r\n",
    "\ufeff# escape=`\nRUN a `\nb\n",
    "# escape=``\nRUN a\n",
    "# x=y\n# escape=`\nRUN a `\nb\n",
    "# syntax = docker/dockerfile:1.4\nFROM a\n",
    "#syntax=x\n#escape=`\n#escape=\\\nRUN a\n",
    "RUN a\n# escape=`\nRUN b `\nc\n",
    "# escape=`\nRUN echo ``\nRUN b\n",
    "# escape=`\nRUN echo \\\nRUN b\n",
    "# escape=`\nENV a=b` c d=e\n",
    "# escape=`\nLABEL a=\"b`\"c\" d=e\n",
    "# escape=`\nARG a=`\"b\n",
    "# escape=`\nCOPY --from=a\\b x y\n",
    "# 1escape=`\nRUN a `\nb\n",
    "#\n# escape=`\nRUN a `\nb\n",
    "# escape=\\\\\nRUN a\n",
]
for i, s in enumerate(DIRECTIVES):
    case(f"directive_{i:02d}", s)

# --- continuations, comments, whitespace ---
CONT = [
    "FROM a\nRUN a \\\n  b \\\n  c\n",
    "FROM a\nRUN a \\ \t\n  b\n",
    "FROM a\nRUN a \\\n# comment\n  b\n",
    "FROM a\nRUN a \\\n    # indented comment\n  b\n",
    "FROM a\nRUN a \\\n\n  b\n",
    "FROM a\nRUN a \\\n   \n\t\n  b\n",
    "FROM a\nRUN a \\\\\nRUN b\n",
    "FROM a\nRUN a \\\\ \nRUN b\n",
    "FROM a\nRUN a \\\\\\\n b\n",
    "FROM a\nRUN a \\\n",
    "FROM a\nRUN a \\",
    "FROM a\nRUN a \\\n# only comment after\n",
    "\\\nFROM a\n",
    "\\\n",
    "\\\n\n# c\n",
    "FROM a\n\\\n\\\nRUN x\n",
    "FROM a\nRUN \\\n  --mount=type=cache,target=/x \\\n  make\n",
    "FROM a\nCOPY \\\n  --from=b \\\n  /x /y\n",
    "FROM a\nENV a=b \\\n    c=d \\\n    e=f\n",
    "FROM a\nLABEL a=b \\\n\n    c=d\n",
    "FROM a\r\nRUN a \\\r\n  b\r\n",
    "FROM a\r\nRUN a\r\n\r\nRUN b\r\n",
    "FROM a\nRUN a \\\r\n  b\n",
    "FROM a\nRUN a\\\nb\n",
    "FROM a\nRUN a \\ x\n",
    "FROM a\n  RUN   indented\n\tCMD tabbed\n",
    "FROM a\n# comment\n  # indented comment\nRUN x # not a comment\n",
    "FROM a\nRUN echo '#not comment'\n",
    "FROM a\n#RUN commented\n",
    "FROM a\nRUN a \\\n#c1\n#c2\n\n  b \\\n  # c3\n  c\n",
    "FROM a\nRUN a\t\\\n\tb\n",
    "   \n\t\nFROM a\n\n\n\nRUN b\n\n",
    "FROM a\nRUN a \\\n \\\n b\n",
    "FROM a\nRUN a \\\n\\\n b\n",
    "FROM a\nRUN a\rb\n",
    "FROM a\nRUN a \\\r \nRUN b\n",
    "FROM a\nRUN a\u00a0\\\nb\n",
    "FROM a\nRUN x \\\nFROM b\n",
    "FROM a\n\u00a0RUN x\n",
    "FROM a\nRUN x\u000b\u000cy\n",
    "FROM a\nRUN\u00a0x\n",
    "FROM a\nRUN\tx\n",
    "FROM a\nRUN\u000bx\n",
    "FROM a\nRUN x\n\n\n",
    "FROM a\nRUN a \\\n\n",
    "\ufeffFROM a\nRUN b\n",
    "\ufeff\ufeffFROM a\n",
    "FROM a\n\ufeffRUN b\n",
    "",
    "\n\n\n",
    "# just a comment\n",
    "   ",
    "FROM a",
    "FROM a\n\n# trailing comment",
    "FROM a\nRUN a \\\n  # c \\\n  b\n",
    "FROM a\nRUN a #\\\n  b\n",
]
for i, s in enumerate(CONT):
    case(f"cont_{i:02d}", s)

# --- heredocs ---
HD = [
    "FROM a\nRUN <<EOF\necho hi\nEOF\n",
    "FROM a\nRUN <<EOF\necho hi\nEOF",
    "FROM a\nRUN <<-EOF\n\techo hi\n\tEOF\n",
    "FROM a\nRUN <<'EOF'\necho $x\nEOF\n",
    "FROM a\nRUN <<\"EOF\"\necho $x\nEOF\n",
    "FROM a\nRUN python3 <<EOF\nprint(1)\nEOF\n",
    "FROM a\nRUN cat <<EOF > /x\nhello\nEOF\n",
    "FROM a\nCOPY <<EOF /dst\ncontent\nEOF\n",
    "FROM a\nCOPY <<A <<B /dst/\na\nA\nb\nB\n",
    "FROM a\nRUN <<A <<B\na\nA\nb\nB\nRUN x\n",
    "FROM a\nADD <<EOF /x\ny\nEOF\n",
    "FROM a\nRUN <<EOF\n",
    "FROM a\nRUN <<EOF\nno end\n",
    "FROM a\nRUN <<EOF\nEOF\n",
    "FROM a\nRUN <<EOF\n  EOF\nEOF\n",
    "FROM a\nRUN <<EOF\nEOF \nEOF\n",
    "FROM a\nRUN <<EOF\r\nx\r\nEOF\r\nRUN y\r\n",
    "FROM a\nRUN <<-EOF\n\t\tx\n\t\tEOF\n",
    "FROM a\nRUN <<-EOF\n  x\n  EOF\nEOF\n",
    "FROM a\nRUN [\"<<EOF\"]\nEOF\n",
    "FROM a\nCMD <<EOF\nx\nEOF\n",
    "FROM a\nENTRYPOINT <<EOF\nx\nEOF\n",
    "FROM a\nONBUILD RUN <<EOF\nx\nEOF\n",
    "FROM a\nONBUILD COPY <<EOF /x\ny\nEOF\n",
    "FROM a\nONBUILD CMD <<EOF\nx\nEOF\n",
    "FROM a\nRUN 3<<EOF\nx\nEOF\n",
    "FROM a\nRUN <<EOF<<X\na\nEOF\n",
    "FROM a\nRUN cat<<EOF\nx\nEOF\n",
    "FROM a\nRUN <<\\EOF\nx\nEOF\n",
    "FROM a\nRUN <<'E'OF\nx\nEOF\n",
    "FROM a\nRUN <<E\"O\"F\nx\nEOF\n",
    "FROM a\nRUN <<\"E F\"\nx\nE F\n",
    "FROM a\nRUN <<E\\ F\nx\nE F\n",
    "FROM a\nRUN <<\"\"\nx\n",
    "FROM a\nRUN <<''\nx\n",
    "FROM a\nRUN <<-\nx\n",
    "FROM a\nRUN <<-\"-\"\n-\n",
    "FROM a\nRUN <<$EOF\n$EOF\n",
    "FROM a\nRUN <<${EOF}\n${EOF}\n",
    "FROM a\nRUN <<EOF echo \"x\nEOF\n",
    "FROM a\nRUN <<EOF ${A#b}\nx\nEOF\n",
    "FROM a\nRUN <<EOF ${A:-b c}\nx\nEOF\n",
    "FROM a\nRUN <<EOF ${A-b}\nx\nEOF\n",
    "FROM a\nRUN <<EOF ${}\nx\nEOF\n",
    "FROM a\nRUN <<EOF $@ ${#}\nx\nEOF\n",
    "FROM a\nRUN <<EOF\n#!/bin/sh\necho hi\nEOF\n",
    "FROM a\nRUN --mount=type=cache,target=/x <<EOF\nmake\nEOF\n",
    "FROM a\nRUN <<EOF \\\n  && echo more\nbody\nEOF\n",
    "FROM a\nRUN echo <<EOF \\\n# comment\nbody\nEOF\n",
    "FROM a\nRUN <<EOF\n\nEOF\n",
    "FROM a\nRUN <<EOF\nline \\\nEOF\n",
    "FROM a\nRUN <<EOF\nRUN inner\nEOF\nRUN after\n",
    "FROM a\nrun <<eof\nx\neof\n",
    "FROM a\nRUN <<EOF\nx\nEOF\n\nRUN <<EOF\ny\nEOF\n",
    "FROM a\nCOPY --chmod=755 <<EOF /usr/bin/x\n#!/bin/sh\nEOF\n",
    "FROM a\nCOPY <<EOF\nx\nEOF\n",
    "FROM a\nRUN <<EOF <<EOF\na\nEOF\nb\nEOF\n",
    "FROM a\nRUN <<A\na\nA\nA\n",
    "FROM a\nRUN echo '<<EOF'\nx\n",
    "FROM a\nRUN echo \"<<EOF\"\nx\n",
    "FROM a\nRUN echo \\<<EOF\nx\nEOF\n",
    "FROM a\nRUN <<EOF\n\tEOF\nEOF\n",
    "FROM a\nRUN <<-EOF\n \tEOF\n\tEOF\n",
    "FROM a\nRUN <<EOF\nEOF\r\n",
    "FROM a\nRUN <<EOF\nx\nEOF\r\r\n",
    "FROM a\nRUN <<EOF   \nx\nEOF\n",
    "FROM a\nRUN <<'EOF\nx\nEOF\n",
    "FROM a\nRUN <<E'O\nx\n",
    "FROM a\nRUN --x=<<EOF y\nx\n",
    "FROM a\nCOPY --from=x <<EOF /y\nz\nEOF\n",
    "FROM a\nRUN 10<<EOF\nx\nEOF\n",
    "FROM a\nRUN <<é\nx\né\n",
    "FROM a\nRUN <<EOF\nunicode ✓ ü\nEOF\n",
    "FROM a\nRUN <<EOF\n\ufeffx\nEOF\n",
    "FROM a\nRUN <<-EOF\n\t\n\tEOF\n",
    "FROM a\nRUN <<EOF &&\\\n  echo x\nbody\nEOF\n",
    "FROM a\nRUN <<\"E\\\"F\"\nx\nE\"F\n",
    "FROM a\nRUN <<'a'b'c'\nx\nabc\n",
    "FROM a\nRUN <<EOF\nx\nEOF\nEOF\n",
    "# escape=`\nFROM a\nRUN <<EOF `\n  && echo\nx\nEOF\n",
    "# escape=`\nFROM a\nRUN <<E`OF\nx\nEOF\n",
    "# escape=`\nFROM a\nRUN <<E\\OF\nx\nEOF\n",
    "FROM a\nHEALTHCHECK CMD <<EOF\nx\nEOF\n",
    "FROM a\nRUN <<EOF\n" + "line\n" * 50 + "EOF\n",
    "FROM a\nRUN <<EO${Aé-b}\nx\nEO${Aé-b}\n",
    "FROM a\nRUN <<E ${é}\nx\nE\n",
    "FROM a\nRUN <<E ${Ⅰ}\nx\nE\n",
    "FROM a\nRUN <<E ${a٣}\nx\nE\n",
    "FROM a\nRUN <<E $٣x ${٣}\nx\nE\n",
    "FROM a\nRUN <<E ${a\u0301}\nx\nE\n",
]
for i, s in enumerate(HD):
    case(f"heredoc_{i:02d}", s)

# --- flags ---
FLAGS = [
    "FROM a\nCOPY --from=a --chown=b:c --chmod=0755 --link x y\n",
    "FROM a\nCOPY --from=é x y\n",
    "FROM a\nCOPY --x=à y z\n",
    "FROM a\nCOPY --x=\"a b\"c x y\n",
    "FROM a\nCOPY --x='a\\b' x y\n",
    "FROM a\nCOPY --x=a\\\\b x y\n",
    "FROM a\nCOPY --x=\"unterminated x y\n",
    "FROM a\nCOPY --x=a\\ x y\n",
    "FROM a\nCOPY --x= x y\n",
    "FROM a\nCOPY --x=\"\" x y\n",
    "FROM a\nCOPY --=x y z\n",
    "FROM a\nCOPY -- x y\n",
    "FROM a\nCOPY --x\n",
    "FROM a\nCOPY --x \n",
    "FROM a\nCOPY --x\\\n",
    "FROM a\nCOPY --\"\" x y\n",
    "FROM a\nCOPY --x --\n",
    "FROM a\nCOPY --x -- \n",
    "FROM a\nCOPY \"--x\" y\n",
    "FROM a\nCOPY --x=1\t--y=2  a b\n",
    "FROM a\nRUN --mount=type=bind,source=.,target=/src,rw --mount=type=tmpfs,target=/t make\n",
    "FROM a\nRUN --mount=type=cache,id=x,sharing=locked,target=/var/cache/apt apt-get update\n",
    "FROM a\nADD --chown=1 --chmod=2 --checksum=sha256:x --keep-git-dir --link https://a /b\n",
    "FROM a\nRUN --a\u00a0b x\n",
    "FROM a\nRUN --a\u0085b x\n",
    "FROM a\nHEALTHCHECK --interval=1s --timeout=\"2 s\" CMD x\n",
    "FROM a\nFROM --platform=\"linux/amd64\" b AS c\n",
    "FROM a\nCOPY --a='b c' --d=\"e'f\" g h\n",
    "FROM a\nCOPY --a=b\\\"c d e\n",
    "FROM a\nCOPY --a=b\"c\\\"d\"e f g\n",
    "FROM a\nONBUILD --a=b --c COPY --d=e f g\n",
    "FROM a\nRUN --x=\"a\\\n",
]
for i, s in enumerate(FLAGS):
    case(f"flags_{i:02d}", s)

# --- unicode, case, misc ---
MISC = [
    "from a\nrun x\ncopy a b\nenv a=b\n",
    "FrOm a\nRuN x\n",
    "FROM a\nENTRYPO\u0130NT [\"x\"]\n",
    "FROM a\nHEALTHCHEC\u212a NONE\n",
    "FROM a\nRUN echo 日本語\nLABEL ключ=значение\n",
    "FROM a\nENV é=ü\n",
    "FROM a\nRUN echo \U0001F600\n",
    "FROM a\nLABEL a=\"multi\\\n  line\"\n",
    "FROM a\nENV a=\"b\\\n  c\" d=e\n",
    "FROM a\nRUN echo \"a \\\"b\\\" c\"\n",
    "FROM a\nARG a=\"b\\\"c\" d='e\\'\n",
    "FROM a\nENV a='b\\'\n",
    "FROM a\nENV a\\=b=c\n",
    "FROM a\nENV a=b\\\n",
    "FROM a\nLABEL \"\"=\"\"\n",
    "FROM a\nENV =\n",
    "FROM a\nARG =\n",
    "FROM a\nARG \"\"\n",
    "FROM a\nENV a=\"\" b=''\n",
    "FROM a\nENV a \"\"\n",
    "FROM a\nRUN [\"a\\\\b\", \"c\\/d\", \"\\b\\f\\n\\r\\t\"]\n",
    "FROM a\nRUN [\"\\ud800\", \"\\udc00x\", \"\\ud800\\u0041\"]\n",
    "FROM a\nRUN [\"\\x\"]\n",
    "FROM a\nRUN [\"a\"]]\n",
    "FROM a\nRUN [[\"a\"]]\n",
    "FROM a\nRUN [\"a\" , \"b\" ]\n",
    "FROM a\nRUN [\n",
    "FROM a\nRUN [\"a\", 1e5, true, false]\n",
    "FROM a\nRUN [-]\n",
    "FROM a\nRUN [\"a\"\u00a0]\n",
    "FROM a\nRUN  [\"a\"]\n",
    "FROM a\nVOLUME [\"/a\", 2]\n",
    "FROM a\nCOPY [\"a\", \"b\"] c\n",
    "FROM a\nUSER [\"a\"]\n",
    "FROM a\nEXPOSE 80 \u00a0 81\n",
    "FROM a\nSTOPSIGNAL \u00a0SIGKILL\u00a0\n",
    "FROM a\nRUN a \u3000 b\n",
    "FROM a\nMAINTAINER a\u2003b\n",
    "FROM a\nRUN x\u0085\n",
    "FROM a AS b\nFROM b AS c\nCOPY --from=b /x /y\n",
    "ARG V=1\nFROM a:${V}\nARG V\nRUN echo $V\n",
]
for i, s in enumerate(MISC):
    case(f"misc_{i:02d}", s)

# --- realistic files ---
REAL = {
    "real_go": """# syntax=docker/dockerfile:1.6
ARG GO_VERSION=1.22
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
RUN --mount=type=cache,target=/go/pkg/mod \\
    --mount=type=bind,source=go.sum,target=go.sum \\
    --mount=type=bind,source=go.mod,target=go.mod \\
    go mod download -x
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod \\
    --mount=type=bind,target=. \\
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH go build -o /bin/server .

FROM alpine:latest AS final
RUN --mount=type=cache,target=/var/cache/apk \\
    apk --update add \\
        ca-certificates \\
        tzdata \\
        && \\
        update-ca-certificates
ARG UID=10001
RUN adduser \\
    --disabled-password \\
    --gecos "" \\
    --home "/nonexistent" \\
    --shell "/sbin/nologin" \\
    --no-create-home \\
    --uid "${UID}" \\
    appuser
USER appuser
COPY --from=build /bin/server /bin/
EXPOSE 8000
ENTRYPOINT [ "/bin/server" ]
""",
    "real_python": """FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 \\
    PYTHONUNBUFFERED=1
WORKDIR /app
# Install deps
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
HEALTHCHECK --interval=30s --timeout=3s \\
  CMD curl -f http://localhost:8000/health || exit 1
LABEL org.opencontainers.image.title="app" \\
      org.opencontainers.image.version="1.0"
CMD ["gunicorn", "-b", "0.0.0.0:8000", "app:app"]
""",
    "real_heredoc": """# syntax=docker/dockerfile:1
FROM debian:bookworm
RUN <<EOT bash
  set -ex
  apt-get update
  apt-get install -y vim
EOT
COPY <<-"EOT" /app/script.sh
\t#!/bin/sh
\techo "hello ${NAME}"
\tEOT
RUN <<EOF cat > /etc/config && <<EOF2 cat > /etc/other
a=1
EOF
b=2
EOF2
""",
    "real_windows": """# escape=`
FROM mcr.microsoft.com/windows/servercore:ltsc2022
SHELL ["powershell", "-Command", "$ErrorActionPreference = 'Stop';"]
RUN Write-Host 'hello'; `
    New-Item -ItemType Directory C:\\app
COPY . C:\\app
WORKDIR C:\\app
ENV APP_HOME=C:\\app `
    PATH="C:\\app;${PATH}"
CMD ["cmd", "/S", "/C", "C:\\app\\run.bat"]
""",
    "real_legacy": """FROM ubuntu:14.04
MAINTAINER Someone <someone@example.com>
ENV DEBIAN_FRONTEND noninteractive
ENV HOME /root
RUN apt-get update && apt-get install -y \\
    curl \\
    git \\
 && rm -rf /var/lib/apt/lists/*
ADD http://example.com/x.tar.gz /tmp/
VOLUME ["/data", "/logs"]
EXPOSE 80 443
ONBUILD ADD . /app/src
ONBUILD RUN /usr/local/bin/python-build --dir /app/src
STOPSIGNAL SIGQUIT
USER nobody
""",
}
for k, s in REAL.items():
    case(k, s)

# --- BuildKit-style error cases ---
ERRS = [
    "FROM a\nENV a=b c d\n",
    "FROM a\nLABEL a\n",
    "FROM a\nRUN [\"a\", 1]\n",
    "FROM a\nRUN <<EOF\nx\n",
    "FROM a\nCOPY <<A <<B /x\na\nA\n",
    "# escape=`\n# escape=\\\nFROM a\n",
    "# escape=q\nFROM a\n",
    "FROM a\nONBUILD ENV x\n",
    "FROM a\nHEALTHCHECK CMD [1]\n",
    "FROM a\nSHELL [false]\n",
    "FROM a\nENTRYPOINT [{}]\n",
    "FROM a\nCMD [null]\n",
    "FROM a\nENV\ta\n",
    "FROM a\nENV a=1 b\n",
    "FROM a\nLABEL a=1 \"b c\"\n",
]
for i, s in enumerate(ERRS):
    case(f"error_{i:02d}", s)

# Long line cases (BuildKit's 64 KiB scanner limit).
case("long_ok", "FROM a\nRUN " + "x" * 65531 + "\n")
case("long_too_long", "FROM a\nRUN " + "x" * 65533 + "\n")
case("long_last_unterminated", "FROM a\nRUN " + "x" * 65532)
case("long_heredoc", "FROM a\nRUN <<EOF\n" + "y" * 70000 + "\nEOF\n")

for name in list(os.listdir(root)):
    if name.endswith(".Dockerfile") and name[: -len(".Dockerfile")] not in CASES:
        os.remove(os.path.join(root, name))
for name, src in CASES.items():
    with open(os.path.join(root, name + ".Dockerfile"), "w", encoding="utf-8", newline="") as f:
        f.write(src)
print(f"{len(CASES)} cases written")
