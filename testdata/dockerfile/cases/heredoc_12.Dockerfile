FROM a
RUN <<EOF
no end
