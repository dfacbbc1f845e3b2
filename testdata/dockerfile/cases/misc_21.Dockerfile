FROM a
RUN ["\ud800", "\udc00x", "\ud800\u0041"]
