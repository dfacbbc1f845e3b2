FROM base
RUN ["\u00e9\ud83d\ude00"]
