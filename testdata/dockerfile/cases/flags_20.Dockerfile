FROM a
RUN --mount=type=bind,source=.,target=/src,rw --mount=type=tmpfs,target=/t make
