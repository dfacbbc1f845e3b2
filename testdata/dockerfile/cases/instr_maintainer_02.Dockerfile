FROM base
MAINTAINER   a   b  
