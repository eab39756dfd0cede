from ingestion.collector import main

main()
