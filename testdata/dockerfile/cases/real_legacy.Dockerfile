FROM ubuntu:14.04
MAINTAINER Someone <someone@example.com>
ENV DEBIAN_FRONTEND noninteractive
ENV HOME /root
RUN apt-get update && apt-get install -y \
    curl \
    git \
 && rm -rf /var/lib/apt/lists/*
ADD http://example.com/x.tar.gz /tmp/
VOLUME ["/data", "/logs"]
EXPOSE 80 443
ONBUILD ADD . /app/src
ONBUILD RUN /usr/local/bin/python-build --dir /app/src
STOPSIGNAL SIGQUIT
USER nobody
