FROM base
RUN ["unterminated
