FROM base
RUN  echo   a  b  
