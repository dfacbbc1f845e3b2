FROM base
VOLUME /data
