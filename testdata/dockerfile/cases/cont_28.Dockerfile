FROM a
#RUN commented
