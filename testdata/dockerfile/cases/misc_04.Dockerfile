FROM a
RUN echo 日本語
LABEL ключ=значение
