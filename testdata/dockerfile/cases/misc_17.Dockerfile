FROM a
ARG ""
