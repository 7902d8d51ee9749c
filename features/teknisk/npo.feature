# language: sv
@criterion:tech-npo @needs:fhir_base @needs:records @writes @per_site
Egenskap: Den andra sidans journaluppgifter går att läsa (NPÖ)
  En enhet i den nya journalen ska kunna läsa vad en enhet i det äldre journalsystemet
  publicerat om patienten, och tvärtom, genom patientöversikten (här integrationsbryggans
  NPÖ-liknande tjänst).

  @route:new-to-legacy
  @id:tek-npo-01
  Scenario: Platsen läser båda journalernas uppgifter om sin testpatient
    Givet att en enhet i det äldre journalsystemet har publicerat en anteckning om platsens testpatient
    När patientöversikten läses för patienten
    Så svarar både den nya och den äldre journalen
    Och visas anteckningen ordagrant
    Och visas den nya journalens provsvar för patienten
