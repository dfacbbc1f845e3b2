from  ubuntu   AS   x 
