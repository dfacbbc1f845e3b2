FROM a
ENV é=ü
