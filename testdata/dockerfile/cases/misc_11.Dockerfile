FROM a
ENV a='b\'
