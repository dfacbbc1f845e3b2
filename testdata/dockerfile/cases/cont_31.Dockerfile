   
	
FROM a



RUN b

