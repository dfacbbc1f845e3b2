FROM a
RUN ["a" ]
