FROM a
RUN echo "<<EOF"
x
