FROM a
ARG a="b\"c" d='e\'
