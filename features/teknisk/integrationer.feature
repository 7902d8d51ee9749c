# language: sv
@criterion:tech-integrations
Egenskap: Integrationerna svarar
  Journalen, labbsystemet och integrationsbryggan mellan den nya och den äldre journalen
  ska vara igång innan något annat prövas. Faller en av dem är felet centralt: platsernas
  scenarier som behöver den blockeras (visas som inte körda) tills den svarar igen.

  @id:tek-integrations-01
  Scenario: Den nya journalens FHIR-gränssnitt svarar inom planens tidsgräns
    När FHIR-gränssnittets metadata hämtas
    Så svarar servern med ett CapabilityStatement inom planens tidsgräns

  @needs:lab_mllp
  @id:tek-integrations-02
  Scenario: Labbsystemet kvitterar meddelanden på sitt MLLP-gränssnitt
    När ett HL7-testmeddelande skickas till labbsystemet över MLLP
    Så svarar labbsystemet med en godkänd kvittens (AA) på just det meddelandet

  @needs:monitoring
  @id:tek-integrations-03
  Scenario: Integrationsbryggans hjärtslag är friskt
    När bryggans hjärtslag hämtas
    Så arbetar bryggan och varje förbindelse fungerar

  @needs:lab_mllp @needs:lab @writes
  @id:tek-integrations-04
  Scenario: Labbets svar bär beställningens text oförändrad, å, ä och ö inräknade
    När en beställning med å, ä och ö skickas till labbsystemet över HL7 v2
    Så svarar labbsystemet med en godkänd kvittens (AA) på just det meddelandet
    Och kommer labbets svar på samma patient med beställningens text byte för byte
